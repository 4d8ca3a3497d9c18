"""Every GraphQL document the engine sends, checked against a schema before a run needs it.

Pluvo publishes no machine-readable schema and its three documentation generations
disagree, so the only trustworthy contract is the live schema (introspection). The
documents are built with the same builders the executor and client use (sync/pluvo/ops.py,
sync/plan.py), with representative arguments, and validated with graphql-core: a
field or argument the live API lacks then shows up here, by operation, instead of as
a failed run at 3 a.m.

Literal values matter too: an argument rendered as a string where the schema wants an
enum is caught by validation, so the arguments below use the engine's own shapes
(roles and language as enums, datetimes as ISO strings, choices by stringValue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from graphql import GraphQLError, GraphQLSchema, parse, validate

from sync.commands.reconcile.live import USER_NODE_SELECTION
from sync.core.categories import compare, mapped_in
from sync.core.mapping.spec import MappingSpec
from sync.pluvo import ops
from sync.pluvo.client import MAX_PAGE
from sync.pluvo.ops import Call, MembershipFields
from sync.pluvo.reads import offset_calls
from sync.pluvo.results import ExtraCategory

ArchiveMethod = Literal["upsert", "bulk", "update"]
LeaverAction = Literal["archive", "deactivate", "ignore"]

MEMBERSHIP_CHOICES: tuple[MembershipFields, ...] = ("ids", "refs")
"""Tried in this order: the newest documented spelling wins when both exist."""

MEMBERSHIP_LABELS: dict[MembershipFields, str] = {
    "ids": "addedIds (newer API)",
    "refs": "addedRefs (older API)",
}

# Mirrors PluvoClient.paginate and PluvoClient.list_extra_categories: the client builds
# these read documents inline, so their shape is repeated here.
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
EXTRA_CATEGORY_SELECTION = (
    "id ref title categoryType forModelTypes choiceOptions { id ref stringValue }"
)
MEMBER_SELECTION = "id ref email"
GROUP_LIST_SELECTION = "id ref name"

_SAMPLE_REF = "DOCTOR-1"
_SAMPLE_GROUP = "doctor-group"
_SAMPLE_ID = "00000000-0000-4000-8000-000000000000"
_SAMPLE_CURSOR = "YXJyYXljb25uZWN0aW9uOjA="


@dataclass(frozen=True)
class EngineDocument:
    """One document the engine sends: its root field, what it is for, and its text."""

    field: str
    purpose: str
    text: str


@dataclass(frozen=True)
class Problem:
    field: str
    purpose: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _single(call: Call, purpose: str) -> EngineDocument:
    """One call rendered exactly as the client's batches render it (aliased a0)."""
    return EngineDocument(call.field, purpose, ops.render_document([call], name="SyncBatch"))


def page_document(
    path: Sequence[tuple[str, Mapping[str, object]]], node_selection: str, purpose: str
) -> EngineDocument:
    """A page of a (possibly nested) Relay connection, as the client's `paginate` sends it."""
    *outer, (last, last_args) = path
    levels = [*outer, (last, {**last_args, "first": MAX_PAGE, "after": _SAMPLE_CURSOR})]
    inner = f"{PAGE_INFO} edges {{ node {{ {node_selection} }} }}"
    for name, args in reversed(levels):
        inner = Call(name, args, inner, "query").render()
    return EngineDocument(path[0][0], purpose, f"query Page {{ {inner} }}")


def write_documents(
    *, leaver_action: LeaverAction = "archive", archive_method: ArchiveMethod = "upsert"
) -> list[EngineDocument]:
    """The mutations the executor sends, except the membership ones (see membership_documents).

    Only the leaver method the config selects is included: a live API lacking
    `archiveUsers` must not fail a deployment that archives by upsert.
    """
    full_user = ops.user_input(
        {
            "email": "doctor@example.org",
            "name": "Doctor Check",
            "language": "NL",
            "roles": "MANAGER,PARTICIPANT",
            "is_active": "true",
        }
    )
    docs = [
        _single(ops.upsert_user(_SAMPLE_REF, full_user, send_invite=False), "create/update user"),
        _single(
            ops.upsert_user(_SAMPLE_REF, {"archived": False, "isActive": True}, send_invite=False),
            "restore user",
        ),
        _single(ops.create_group(_SAMPLE_GROUP, "Doctor group"), "create group"),
        _single(ops.update_group(_SAMPLE_GROUP, name="Doctor group"), "rename group"),
        _single(ops.add_managers_to_group(_SAMPLE_GROUP, [_SAMPLE_REF]), "add managers"),
        _single(ops.remove_managers_from_group(_SAMPLE_GROUP, [_SAMPLE_REF]), "remove managers"),
        _single(
            ops.set_extra_values(
                _SAMPLE_REF,
                [
                    ops.value_input("department", "string", "HR"),
                    ops.value_input("start_date", "datetime", "2024-01-31"),
                    ops.value_input("is_external", "boolean", "false"),
                    ops.value_input("skills", "multiselect", "Excel\nSQL"),
                    ops.value_input("department", "string", None),
                ],
            ),
            "set extra values",
        ),
    ]
    if leaver_action == "deactivate":
        docs.append(
            _single(
                ops.upsert_user(_SAMPLE_REF, {"isActive": False}, send_invite=False),
                "deactivate leaver",
            )
        )
    elif leaver_action == "archive":
        if archive_method == "bulk":
            archive = ops.archive_users([_SAMPLE_ID], archive=True)
            # Without a known Pluvo id the executor falls back to the upsert.
            docs.append(_single(archive, "archive leaver (bulk)"))
            fallback = ops.upsert_user(_SAMPLE_REF, {"archived": True}, send_invite=False)
            docs.append(_single(fallback, "archive leaver (no id known)"))
        elif archive_method == "update":
            docs.append(
                _single(ops.update_user(ref=_SAMPLE_REF, user={"archived": True}), "archive leaver")
            )
        else:
            docs.append(
                _single(
                    ops.upsert_user(_SAMPLE_REF, {"archived": True}, send_invite=False),
                    "archive leaver",
                )
            )
    return docs


def membership_documents(fields: MembershipFields) -> list[EngineDocument]:
    """Group membership mutations selecting one generation of the result fields."""
    return [
        _single(
            ops.add_users_to_group(_SAMPLE_GROUP, [_SAMPLE_REF], result_fields=fields),
            f"add members ({fields})",
        ),
        _single(
            ops.remove_users_from_group(_SAMPLE_GROUP, [_SAMPLE_REF], result_fields=fields),
            f"remove members ({fields})",
        ),
    ]


def read_documents() -> list[EngineDocument]:
    """The queries the client sends (reconcile, adoption, category lookup)."""
    count = Call("paginatedUsers", {"first": 1, "archived": False}, "count", "query")
    categories = Call(
        "extraCategories", {"contentType": ops.Enum("USER")}, EXTRA_CATEGORY_SELECTION, "query"
    )
    return [
        page_document([("paginatedUsers", {"archived": False})], ops.USER_SELECTION, "read users"),
        EngineDocument("paginatedUsers", "count users", f"query CountUsers {{ {count.render()} }}"),
        _single(ops.get_user(ref=_SAMPLE_REF), "look up user by ref"),
        _single(ops.get_user(email="doctor@example.org"), "look up user by email"),
        page_document([("paginatedGroups", {})], GROUP_LIST_SELECTION, "read groups"),
        # The full reads (reconcile's users, every group) page by offset, a part of
        # the schema Pluvo's documentation does not show; the cursor pages above are
        # their fallback.
        _single(
            offset_calls("paginatedUsers", {"archived": False}, USER_NODE_SELECTION, 1)[0],
            "read users by offset",
        ),
        _single(
            offset_calls("paginatedGroups", {}, GROUP_LIST_SELECTION, 1)[0],
            "read groups by offset",
        ),
        page_document(
            [("group", {"ref": _SAMPLE_GROUP}), ("users", {})], MEMBER_SELECTION, "read members"
        ),
        page_document(
            [("group", {"ref": _SAMPLE_GROUP}), ("managers", {})],
            MEMBER_SELECTION,
            "read managers",
        ),
        EngineDocument(
            "extraCategories",
            "list categories",
            f"query ExtraCategories {{ {categories.render()} }}",
        ),
    ]


def validate_documents(schema: GraphQLSchema, docs: Iterable[EngineDocument]) -> list[Problem]:
    """graphql-core's verdict on each document; the same message once per root field."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        try:
            errors = validate(schema, parse(doc.text))
        except GraphQLError as exc:
            errors = [exc]
        for error in errors:
            key = (doc.field, error.message)
            if key not in seen:
                seen.add(key)
                problems.append(Problem(doc.field, doc.purpose, error.message))
    return problems


@dataclass(frozen=True)
class MembershipChoice:
    """Which membership result spelling the schema accepts; `fields` is None if neither."""

    fields: MembershipFields | None
    rejected: dict[MembershipFields, list[Problem]]

    @property
    def label(self) -> str:
        return MEMBERSHIP_LABELS[self.fields] if self.fields else "none"


def choose_membership(schema: GraphQLSchema) -> MembershipChoice:
    """The first spelling (ids, then refs) whose add and remove documents both validate."""
    rejected: dict[MembershipFields, list[Problem]] = {}
    for fields in MEMBERSHIP_CHOICES:
        problems = validate_documents(schema, membership_documents(fields))
        if not problems:
            return MembershipChoice(fields, rejected)
        rejected[fields] = problems
    return MembershipChoice(None, rejected)


def category_problems(
    categories: Sequence[ExtraCategory], mappings: Mapping[str, MappingSpec]
) -> list[str]:
    """Every category a mapping writes must exist in Pluvo, with its type and options.

    The comparison is the one `plan` and `run` make (sync/core/categories.py), so doctor
    and a run never disagree; doctor also lists options Pluvo lacks, which a run only
    meets as rejected rows.
    """
    return [
        f"source {m.mapped.source}: extra category {m.mapped.spec.category!r} {m.problem}"
        for m in compare(categories, mapped_in(mappings))
    ]


def mapped_category_count(mappings: Mapping[str, MappingSpec]) -> int:
    return len({e.category for spec in mappings.values() for e in spec.extra})
