"""The sandbox's data and Pluvo's rules about it, in plain Python without I/O.

The store is touched only from the server's event loop, so it takes no locks. Every
rule a sync can trip over lives here: ref and email uniqueness, the upsert's selector,
the three ways of archiving, typed extra values (merge or replace), and membership that
becomes visible to reads only after `membership_delay` seconds (it is applied at once,
so a second add reports "already added" even while reads do not show it yet).

Its dump (`dump()`) is also the seed and state-file format: users, groups (members and
managers by ref, and by id for an exact reload), categories and API clients, with extra
values keyed by category ref in readable form (choice options by their string value).
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sync.emails import is_valid_email

NOT_FOUND = "NotFound"
CONFLICT = "Conflict"
INVALID = "InvalidInput"
PERMISSION_DENIED = "PermissionDenied"

SCOPES = (
    "users.read",
    "users.write",
    "groups.read",
    "groups.write",
    "extra_categories.write",
    "trainings.read",
    "trainings.write",
    "events.read",
    "events.write",
)
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"

USER_FIELDS = (
    "ref",
    "email",
    "name",
    "roles",
    "language",
    "isActive",
    "archived",
    "afasEmployeeId",
    "afasPersonId",
)
GROUP_FIELDS = ("ref", "name", "maxUsers", "enableChat", "isEditable")
VALUE_KINDS = ("stringValue", "datetimeValue", "booleanValue", "choiceValues")
CATEGORY_TYPES = ("STRING", "DATETIME", "BOOLEAN", "CHOICE", "MULTISELECT")

Relation = Literal["members", "managers"]


class SandboxError(Exception):
    """A rule broken by a request; becomes a GraphQL error with `extensions.code`."""

    def __init__(self, message: str, code: str = INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extensions = {"code": code}


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


def normalise_uuid(value: Any) -> str | None:
    """The canonical form of a UUID, or None when it is not one."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None


def parse_datetime(value: Any) -> str:
    """ISO 8601 in, ISO 8601 out with a time zone (naive means UTC)."""
    if not isinstance(value, str):
        raise SandboxError(f"expected an ISO 8601 date-time string, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SandboxError(f"invalid date-time {value!r}: expected ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def _check_email(email: str) -> None:
    """Pluvo's own check (Django's EmailValidator), the very rule the plan applies."""
    if not is_valid_email(email):
        raise SandboxError(f"email: Enter a valid email address ({email!r}).")


@dataclass(eq=False)
class User:
    id: str
    name: str
    ref: str | None = None
    email: str | None = None
    is_active: bool = True
    archived: bool = False
    archived_at: str | None = None
    roles: list[str] = field(default_factory=lambda: ["PARTICIPANT"])
    language: str = "NL"
    afas_employee_id: str | None = None
    afas_person_id: str | None = None
    extra_fields: str | None = None
    invited: bool = False
    created_at: str = field(default_factory=utc_now_iso)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.ref if self.ref is not None else self.id


@dataclass(eq=False)
class Group:
    id: str
    name: str
    ref: str | None = None
    max_users: int = 0
    enable_chat: bool = False
    is_editable: bool = True
    # Applied relations (what writes see) and visible ones (what reads see); both keep
    # insertion order, which is the order reads list them in.
    members: dict[str, None] = field(default_factory=dict)
    managers: dict[str, None] = field(default_factory=dict)
    visible_members: dict[str, None] = field(default_factory=dict)
    visible_managers: dict[str, None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.ref if self.ref is not None else self.id

    def applied(self, relation: Relation) -> dict[str, None]:
        return self.members if relation == "members" else self.managers

    def visible(self, relation: Relation) -> dict[str, None]:
        return self.visible_members if relation == "members" else self.visible_managers


@dataclass(eq=False)
class ChoiceOption:
    id: str
    string_value: str
    ref: str | None = None


@dataclass(eq=False)
class Category:
    id: str
    title: str
    category_type: str
    ref: str | None = None
    for_model_types: list[str] = field(default_factory=lambda: ["USER"])
    choice_options: list[ChoiceOption] | None = None
    max_length: int | None = None
    """STRING only: longer values are refused. Not in the GraphQL schema: a rule a
    client cannot see in advance, as Pluvo's own limits are (seed `maxLength`)."""

    @property
    def label(self) -> str:
        return self.ref if self.ref is not None else self.id

    def option(self, given: dict[str, Any]) -> ChoiceOption:
        """The option a choice input names, by ref first, then by string value."""
        options = self.choice_options or []
        ref = given.get("ref")
        text = given.get("stringValue")
        for option in options:
            if ref is not None and option.ref == ref:
                return option
        for option in options:
            if text is not None and option.string_value == text:
                return option
        wanted = ref if ref is not None else text
        names = ", ".join(o.string_value for o in options)
        raise SandboxError(
            f"unknown choice {wanted!r} for extra category {self.label!r} (options: {names})"
        )


@dataclass(eq=False)
class Client:
    client_id: str
    client_secret: str
    scopes: list[str] | None = None
    """None allows every scope."""

    def grant(self, requested: Iterable[str] | None) -> list[str]:
        if requested is None:
            return list(self.scopes if self.scopes is not None else SCOPES)
        wanted = list(dict.fromkeys(requested))
        if self.scopes is None:
            return wanted
        return [s for s in wanted if s in self.scopes]


DEFAULT_CATEGORIES: list[dict[str, Any]] = [
    {"ref": "department", "title": "Department", "categoryType": "STRING"},
    {"ref": "job_title", "title": "Job title", "categoryType": "STRING"},
    {"ref": "start_date", "title": "Start date", "categoryType": "DATETIME"},
    {"ref": "is_external", "title": "External", "categoryType": "BOOLEAN"},
    {
        "ref": "location",
        "title": "Location",
        "categoryType": "CHOICE",
        "choiceOptions": ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Groningen"],
    },
    {
        "ref": "skills",
        "title": "Skills",
        "categoryType": "MULTISELECT",
        "choiceOptions": ["Python", "SQL", "Excel", "Leadership", "Sales", "Design"],
    },
]


@dataclass
class Seed:
    """What a fresh (or reset) sandbox holds, in the dump format of `Store.dump()`.

    The default client (`sandbox-client` / `sandbox-secret`, every scope) and the six
    default USER categories are added unless switched off.
    """

    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)
    default_categories: bool = True
    default_client: bool = True

    def as_data(self) -> dict[str, Any]:
        categories = (list(DEFAULT_CATEGORIES) if self.default_categories else []) + list(
            self.categories
        )
        clients = list(self.clients)
        if self.default_client:
            clients.insert(
                0, {"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_CLIENT_SECRET}
            )
        return {
            "categories": categories,
            "clients": clients,
            "users": list(self.users),
            "groups": list(self.groups),
        }


def _lower(email: str | None) -> str | None:
    return email.casefold() if email is not None else None


class Store:
    """Users, groups, categories and clients, with the lookups and rules over them."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.users: dict[str, User] = {}
        self.users_by_ref: dict[str, User] = {}
        self.users_by_email: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.groups_by_ref: dict[str, Group] = {}
        self.categories: dict[str, Category] = {}
        self.categories_by_ref: dict[str, Category] = {}
        self.clients: dict[str, Client] = {}
        self.invites = 0
        self.version = 0
        self._pending: list[tuple[float, int, str, Relation, str, str]] = []
        self._seq = 0
        self._last_visible_at = 0.0
        self._list_cache: dict[tuple[Any, ...], tuple[int, list[Any]]] = {}

    def touch(self) -> None:
        """Something changed: listings must be recomputed, the state file rewritten."""
        self.version += 1

    # ------------------------------------------------------------------ users

    def find_user(
        self, *, id: str | None = None, ref: str | None = None, email: str | None = None
    ) -> User | None:
        if id is not None:
            return self.users.get(normalise_uuid(id) or "")
        if ref is not None:
            return self.users_by_ref.get(ref)
        if email is not None:
            return self.users_by_email.get(email.casefold())
        return None

    def require_user(self, *, id: str | None = None, ref: str | None = None) -> User:
        if id is None and ref is None:
            raise SandboxError("give id or ref")
        user = self.find_user(id=id, ref=ref)
        if user is None:
            what = f"id {id!r}" if id is not None else f"ref {ref!r}"
            raise SandboxError(f"User matching query does not exist ({what}).", NOT_FOUND)
        return user

    def create_user(
        self, fields: dict[str, Any], *, send_invite: bool, user_id: str | None = None
    ) -> User:
        name = fields.get("name")
        if not name:
            raise SandboxError("name: a name is required to create a user")
        if not fields.get("email"):
            raise SandboxError("email: an email address is required to create a user")
        user = User(id=user_id or new_id(), name=str(name))
        if user.id in self.users:
            raise SandboxError(f"id: a user with id {user.id!r} already exists", CONFLICT)
        self._apply_user_fields(user, fields, creating=True)
        user.invited = send_invite
        self.users[user.id] = user
        self._index_user(user, None, None)
        if send_invite:
            self.invites += 1
        self.touch()
        return user

    def update_user(self, user: User, fields: dict[str, Any]) -> User:
        old_ref, old_email = user.ref, user.email
        self._apply_user_fields(user, fields, creating=False)
        self._index_user(user, old_ref, old_email)
        self.touch()
        return user

    def upsert_user(
        self, *, ref: str | None, email: str | None, fields: dict[str, Any], send_invite: bool
    ) -> tuple[User, bool]:
        """updateOrCreateUser: by ref, else by email (if given); none found -> create."""
        if ref is None and email is None:
            raise SandboxError("give ref or email to select the user")
        user = self.find_user(ref=ref) if ref is not None else None
        if user is None and email is not None:
            user = self.find_user(email=email)
        if user is not None:
            return self.update_user(user, fields), False
        create = dict(fields)
        if create.get("ref") is None and ref is not None:
            create["ref"] = ref
        if create.get("email") is None and email is not None:
            create["email"] = email
        return self.create_user(create, send_invite=send_invite), True

    def archive_users(self, archive: bool, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        succeeded: list[str] = []
        failed: list[str] = []
        for given in ids:
            user = self.find_user(id=given)
            if user is None:
                failed.append(str(given))
                continue
            self._set_archived(user, archive)
            succeeded.append(user.id)
        if succeeded:
            self.touch()
        return succeeded, failed

    def _set_archived(self, user: User, archived: bool) -> None:
        if archived and not user.archived:
            user.archived = True
            user.archived_at = utc_now_iso()
        elif not archived:
            user.archived = False
            user.archived_at = None

    def _apply_user_fields(self, user: User, fields: dict[str, Any], *, creating: bool) -> None:
        """Check everything first, then change: a refused update changes nothing."""
        unknown = set(fields) - set(USER_FIELDS) - {"id", "invited", "archivedAt", "extra"}
        unknown -= {"createdAt", "extraFields", "memberOf", "managerOf"}
        if unknown:
            raise SandboxError(f"unknown user field(s): {', '.join(sorted(unknown))}")
        if "ref" in fields and fields["ref"] is not None:
            ref = str(fields["ref"])
            other = self.users_by_ref.get(ref)
            if other is not None and other is not user:
                raise SandboxError(f"ref: a user with ref {ref!r} already exists.", CONFLICT)
        if "email" in fields and fields["email"] is not None:
            email = str(fields["email"])
            _check_email(email)
            other = self.users_by_email.get(email.casefold())
            if other is not None and other is not user:
                raise SandboxError(f"email: a user with email {email!r} already exists.", CONFLICT)
        if "name" in fields and not creating and not fields["name"]:
            raise SandboxError("name: may not be empty")
        # Explicit null clears the optional text fields and leaves the others alone.
        for key, attr in (
            ("ref", "ref"),
            ("email", "email"),
            ("afasEmployeeId", "afas_employee_id"),
            ("afasPersonId", "afas_person_id"),
        ):
            if key in fields:
                value = fields[key]
                setattr(user, attr, None if value is None else str(value))
        if fields.get("name"):
            user.name = str(fields["name"])
        if fields.get("roles") is not None:
            user.roles = [str(r) for r in fields["roles"] if r is not None]
        if fields.get("language") is not None:
            user.language = str(fields["language"])
        if fields.get("isActive") is not None:
            user.is_active = bool(fields["isActive"])
        if fields.get("archived") is not None:
            self._set_archived(user, bool(fields["archived"]))

    def _index_user(self, user: User, old_ref: str | None, old_email: str | None) -> None:
        if old_ref != user.ref:
            if old_ref is not None and self.users_by_ref.get(old_ref) is user:
                del self.users_by_ref[old_ref]
            if user.ref is not None:
                self.users_by_ref[user.ref] = user
        if _lower(old_email) != _lower(user.email):
            old = _lower(old_email)
            if old is not None and self.users_by_email.get(old) is user:
                del self.users_by_email[old]
            new = _lower(user.email)
            if new is not None:
                self.users_by_email[new] = user

    def list_users(
        self, *, archived: bool | None = None, q: str | None = None, active: bool | None = None
    ) -> list[User]:
        """Users in creation order, filtered; cached until the next change."""
        key = ("users", archived, q, active)
        cached = self._list_cache.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        needle = q.casefold() if q else None
        result = [
            u
            for u in self.users.values()
            if (archived is None or u.archived == archived)
            and (active is None or u.is_active == active)
            and (needle is None or _matches(needle, u.name, u.email, u.ref))
        ]
        if len(self._list_cache) > 64:
            self._list_cache.clear()
        self._list_cache[key] = (self.version, result)
        return result

    # ----------------------------------------------------------------- groups

    def find_group(self, *, id: str | None = None, ref: str | None = None) -> Group | None:
        if id is not None:
            return self.groups.get(normalise_uuid(id) or "")
        if ref is not None:
            return self.groups_by_ref.get(ref)
        return None

    def require_group(self, *, id: str | None = None, ref: str | None = None) -> Group:
        if id is None and ref is None:
            raise SandboxError("give the group's id or ref")
        group = self.find_group(id=id, ref=ref)
        if group is None:
            what = f"id {id!r}" if id is not None else f"ref {ref!r}"
            raise SandboxError(f"Group matching query does not exist ({what}).", NOT_FOUND)
        return group

    def create_group(self, fields: dict[str, Any], *, group_id: str | None = None) -> Group:
        if not fields.get("name"):
            raise SandboxError("name: a name is required to create a group")
        group = Group(id=group_id or new_id(), name=str(fields["name"]))
        if group.id in self.groups:
            raise SandboxError(f"id: a group with id {group.id!r} already exists", CONFLICT)
        self._apply_group_fields(group, fields)
        self.groups[group.id] = group
        if group.ref is not None:
            self.groups_by_ref[group.ref] = group
        self.touch()
        return group

    def update_group(self, group: Group, fields: dict[str, Any]) -> Group:
        old_ref = group.ref
        self._apply_group_fields(group, fields)
        if old_ref != group.ref:
            if old_ref is not None and self.groups_by_ref.get(old_ref) is group:
                del self.groups_by_ref[old_ref]
            if group.ref is not None:
                self.groups_by_ref[group.ref] = group
        self.touch()
        return group

    def _apply_group_fields(self, group: Group, fields: dict[str, Any]) -> None:
        if "ref" in fields and fields["ref"] is not None:
            ref = str(fields["ref"])
            other = self.groups_by_ref.get(ref)
            if other is not None and other is not group:
                raise SandboxError(f"ref: a group with ref {ref!r} already exists.", CONFLICT)
        if "name" in fields and fields["name"] is not None and not fields["name"]:
            raise SandboxError("name: may not be empty")
        if "ref" in fields:
            group.ref = None if fields["ref"] is None else str(fields["ref"])
        if fields.get("name"):
            group.name = str(fields["name"])
        if fields.get("maxUsers") is not None:
            group.max_users = int(fields["maxUsers"])
        if fields.get("enableChat") is not None:
            group.enable_chat = bool(fields["enableChat"])
        if fields.get("isEditable") is not None:
            group.is_editable = bool(fields["isEditable"])

    def delete_groups(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        succeeded: list[str] = []
        failed: list[str] = []
        for given in ids:
            group = self.find_group(id=given)
            if group is None:
                failed.append(str(given))
                continue
            del self.groups[group.id]
            if group.ref is not None and self.groups_by_ref.get(group.ref) is group:
                del self.groups_by_ref[group.ref]
            succeeded.append(group.id)
        if succeeded:
            self.touch()
        return succeeded, failed

    def list_groups(self, *, q: str | None = None) -> list[Group]:
        key = ("groups", q)
        cached = self._list_cache.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        needle = q.casefold() if q else None
        result = [
            g for g in self.groups.values() if needle is None or _matches(needle, g.name, g.ref)
        ]
        self._list_cache[key] = (self.version, result)
        return result

    # ------------------------------------------------------------- membership

    def resolve_users(
        self, ids: Sequence[str] | None, refs: Sequence[str] | None
    ) -> tuple[list[User], list[str]]:
        """The users named by ids and refs (deduplicated), and the names not found."""
        found: dict[str, User] = {}
        failed: list[str] = []
        for given in ids or []:
            user = self.find_user(id=given)
            if user is None:
                failed.append(str(given))
            else:
                found.setdefault(user.id, user)
        for given in refs or []:
            user = self.find_user(ref=given)
            if user is None:
                failed.append(str(given))
            else:
                found.setdefault(user.id, user)
        return list(found.values()), failed

    def change_relation(
        self,
        group: Group,
        relation: Relation,
        op: Literal["add", "remove"],
        users: Sequence[User],
        *,
        now: float,
        delay: float,
    ) -> tuple[list[User], list[User]]:
        """Apply at once; show to reads after `delay`. Returns (changed, unchanged)."""
        applied = group.applied(relation)
        changed: list[User] = []
        unchanged: list[User] = []
        for user in users:
            present = user.id in applied
            if (op == "add") == present:
                unchanged.append(user)
                continue
            if op == "add":
                applied[user.id] = None
            else:
                del applied[user.id]
            changed.append(user)
            self._schedule(group, relation, op, user.id, now=now, delay=delay)
        if changed:
            self.touch()
        return changed, unchanged

    def _schedule(
        self, group: Group, relation: Relation, op: str, user_id: str, *, now: float, delay: float
    ) -> None:
        if delay <= 0 and not self._pending:
            _apply_visible(group, relation, op, user_id)
            return
        # Visibility times never go backwards while changes wait, so they show in the
        # order they were made; with none waiting (all shown, or flushed), a change
        # shows after its own delay.
        floor = self._last_visible_at if self._pending else 0.0
        at = max(now + max(delay, 0.0), floor)
        self._last_visible_at = at
        self._seq += 1
        heapq.heappush(self._pending, (at, self._seq, group.id, relation, op, user_id))
        self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Make every change due by `now` (all of them when None) visible to reads."""
        pending = self._pending
        while pending and (now is None or pending[0][0] <= now):
            _at, _seq, group_id, relation, op, user_id = heapq.heappop(pending)
            group = self.groups.get(group_id)
            if group is not None:
                _apply_visible(group, relation, op, user_id)

    @property
    def pending_changes(self) -> int:
        return len(self._pending)

    def visible_users(self, group: Group, relation: Relation) -> list[User]:
        users = self.users
        return [users[uid] for uid in group.visible(relation) if uid in users]

    def groups_of(self, user: User, relation: Relation) -> list[Group]:
        return [g for g in self.groups.values() if user.id in g.visible(relation)]

    # ------------------------------------------------------- extra categories

    def add_category(self, data: dict[str, Any]) -> Category:
        category_type = str(data.get("categoryType", "")).upper()
        if category_type not in CATEGORY_TYPES:
            raise SandboxError(
                f"categoryType: expected one of {', '.join(CATEGORY_TYPES)}, "
                f"got {data.get('categoryType')!r}"
            )
        ref = data.get("ref")
        if ref is not None and ref in self.categories_by_ref:
            raise SandboxError(f"ref: an extra category with ref {ref!r} exists.", CONFLICT)
        options: list[ChoiceOption] | None = None
        if category_type in ("CHOICE", "MULTISELECT"):
            options = []
            for item in data.get("choiceOptions") or []:
                if isinstance(item, str):
                    options.append(ChoiceOption(id=new_id(), string_value=item, ref=None))
                else:
                    options.append(
                        ChoiceOption(
                            id=normalise_uuid(item.get("id")) or new_id(),
                            string_value=str(item["stringValue"]),
                            ref=item.get("ref"),
                        )
                    )
        max_length = data.get("maxLength")
        if max_length is not None and (category_type != "STRING" or int(max_length) < 1):
            raise SandboxError("maxLength: only for STRING categories, and at least 1")
        category = Category(
            id=normalise_uuid(data.get("id")) or new_id(),
            title=str(data.get("title") or ref or "Untitled"),
            category_type=category_type,
            ref=ref,
            for_model_types=[str(t).upper() for t in data.get("forModelTypes") or ["USER"]],
            choice_options=options,
            max_length=None if max_length is None else int(max_length),
        )
        self.categories[category.id] = category
        if ref is not None:
            self.categories_by_ref[ref] = category
        self.touch()
        return category

    def categories_for(self, content_type: str | None) -> list[Category]:
        return [
            c
            for c in self.categories.values()
            if content_type is None or content_type in c.for_model_types
        ]

    def find_model(
        self, content_type: str, *, model_id: str | None, model_ref: str | None
    ) -> User | Group:
        if content_type == "USER":
            return self.require_user(id=model_id, ref=model_ref)
        if content_type == "GROUP":
            return self.require_group(id=model_id, ref=model_ref)
        raise SandboxError(f"contentType {content_type}: extra values are not supported here")

    def set_extra_values(
        self,
        content_type: str,
        model: User | Group,
        values: Sequence[dict[str, Any]],
        *,
        mode: str = "merge",
    ) -> None:
        """Check every value, then write them all (merge) or them alone (replace)."""
        changes: dict[str, Any] = {}
        for index, given in enumerate(values):
            category, value = self._checked_value(content_type, given, index)
            changes[category.id] = value
        if mode == "replace":
            model.extra.clear()
        for category_id, value in changes.items():
            if value is None:
                model.extra.pop(category_id, None)
            else:
                model.extra[category_id] = value
        self.touch()

    def _checked_value(
        self, content_type: str, given: dict[str, Any], index: int
    ) -> tuple[Category, Any]:
        where = f"values[{index}]"
        category: Category | None = None
        if given.get("categoryId") is not None:
            category = self.categories.get(normalise_uuid(given["categoryId"]) or "")
            name = given["categoryId"]
        elif given.get("categoryRef") is not None:
            category = self.categories_by_ref.get(given["categoryRef"])
            name = given["categoryRef"]
        else:
            raise SandboxError(f"{where}: give categoryId or categoryRef")
        if category is None:
            raise SandboxError(f"{where}: unknown extra category {name!r}", NOT_FOUND)
        if content_type not in category.for_model_types:
            raise SandboxError(
                f"{where}: extra category {category.label!r} is not for {content_type}"
            )
        kinds = [k for k in VALUE_KINDS if given.get(k) is not None]
        if not kinds:
            raise SandboxError(
                f"{where}: give one of stringValue, datetimeValue, booleanValue, choiceValues"
            )
        if len(kinds) > 1:
            raise SandboxError(f"{where}: give only one value, got {', '.join(kinds)}")
        kind = kinds[0]
        raw = given[kind]
        if kind == "stringValue" and raw == "":
            return category, None
        expected = {
            "STRING": "stringValue",
            "DATETIME": "datetimeValue",
            "BOOLEAN": "booleanValue",
            "CHOICE": "choiceValues",
            "MULTISELECT": "choiceValues",
        }[category.category_type]
        if kind != expected:
            raise SandboxError(
                f"{where}: extra category {category.label!r} is {category.category_type}: "
                f"give {expected}, not {kind}"
            )
        try:
            if kind == "stringValue":
                limit = category.max_length
                if limit is not None and len(str(raw)) > limit:
                    raise SandboxError(
                        f"extra category {category.label!r} takes at most {limit} "
                        f"characters, got {len(str(raw))}"
                    )
                return category, str(raw)
            if kind == "datetimeValue":
                return category, parse_datetime(raw)
            if kind == "booleanValue":
                return category, bool(raw)
            options: list[str] = []
            for item in raw:
                choice = {"stringValue": item} if isinstance(item, str) else dict(item)
                option = category.option(choice)
                if option.id not in options:
                    options.append(option.id)
        except SandboxError as exc:
            raise SandboxError(f"{where}: {exc.message}", exc.code) from None
        if category.category_type == "CHOICE" and len(options) > 1:
            raise SandboxError(
                f"{where}: extra category {category.label!r} is CHOICE: give one option, "
                f"got {len(options)}"
            )
        return category, options or None

    def extra_values_of(self, model: User | Group) -> list[dict[str, Any]]:
        """The union members `extraCategoryValues` returns, in category order."""
        result: list[dict[str, Any]] = []
        for category_id, value in model.extra.items():
            category = self.categories.get(category_id)
            if category is None:
                continue
            kind = category.category_type
            if kind == "STRING":
                result.append(
                    {
                        "__typename": "ExtraCategoryStringValue",
                        "category": category,
                        "stringValue": value,
                        "modelId": model.id,
                    }
                )
            elif kind == "DATETIME":
                result.append(
                    {
                        "__typename": "ExtraCategoryDatetimeValue",
                        "category": category,
                        "datetimeValue": value,
                        "modelId": model.id,
                    }
                )
            elif kind == "BOOLEAN":
                result.append(
                    {
                        "__typename": "ExtraCategoryBooleanValue",
                        "category": category,
                        "booleanValue": value,
                        "modelId": model.id,
                    }
                )
            else:
                by_id = {o.id: o for o in category.choice_options or []}
                for option_id in value:
                    if option_id in by_id:
                        result.append(
                            {
                                "__typename": "ExtraCategoryChoiceValue",
                                "category": category,
                                "choiceValue": by_id[option_id],
                                "modelId": model.id,
                            }
                        )
        order = {cid: i for i, cid in enumerate(self.categories)}
        result.sort(key=lambda v: order.get(v["category"].id, 0))
        return result

    def _readable_extra(self, model: User | Group) -> dict[str, Any]:
        readable: dict[str, Any] = {}
        for category_id, value in model.extra.items():
            category = self.categories.get(category_id)
            if category is None:
                continue
            if category.category_type in ("CHOICE", "MULTISELECT"):
                by_id = {o.id: o.string_value for o in category.choice_options or []}
                texts = [by_id[o] for o in value if o in by_id]
                readable[category.label] = (
                    texts[0] if category.category_type == "CHOICE" and texts else texts
                )
            else:
                readable[category.label] = value
        return readable

    def load_extra(self, content_type: str, model: User | Group, extra: dict[str, Any]) -> None:
        """Set values given readably (`{category_ref: value}`), as seeds and dumps have them."""
        values: list[dict[str, Any]] = []
        for name, value in extra.items():
            category = self.categories_by_ref.get(name) or self.categories.get(
                normalise_uuid(name) or ""
            )
            if category is None:
                raise SandboxError(f"unknown extra category {name!r}", NOT_FOUND)
            kind = {
                "STRING": "stringValue",
                "DATETIME": "datetimeValue",
                "BOOLEAN": "booleanValue",
            }.get(category.category_type, "choiceValues")
            if kind == "choiceValues" and not isinstance(value, list):
                value = [value]
            values.append({"categoryId": category.id, kind: value})
        self.set_extra_values(content_type, model, values)

    # ------------------------------------------------------------------ clients

    def add_client(self, data: dict[str, Any]) -> Client:
        client_id = data.get("clientId") or data.get("client_id")
        secret = data.get("clientSecret") or data.get("client_secret")
        if not client_id or not secret:
            raise SandboxError("a client needs clientId and clientSecret")
        scopes = data.get("scopes")
        if isinstance(scopes, str):
            scopes = scopes.split()
        client = Client(str(client_id), str(secret), None if scopes is None else list(scopes))
        self.clients[client.client_id] = client
        return client

    # ------------------------------------------------------------ dump / load

    def dump(self) -> dict[str, Any]:
        """Everything, readable, in the seed format (reloadable with ids kept)."""
        users = self.users

        def labels(ids: Iterable[str]) -> list[str]:
            return [users[i].label for i in ids if i in users]

        return {
            "users": [
                {
                    "id": u.id,
                    "ref": u.ref,
                    "email": u.email,
                    "name": u.name,
                    "isActive": u.is_active,
                    "archived": u.archived,
                    "archivedAt": u.archived_at,
                    "roles": list(u.roles),
                    "language": u.language,
                    "afasEmployeeId": u.afas_employee_id,
                    "afasPersonId": u.afas_person_id,
                    "invited": u.invited,
                    "createdAt": u.created_at,
                    "extra": self._readable_extra(u),
                }
                for u in users.values()
            ],
            "groups": [
                {
                    "id": g.id,
                    "ref": g.ref,
                    "name": g.name,
                    "maxUsers": g.max_users,
                    "enableChat": g.enable_chat,
                    "isEditable": g.is_editable,
                    "members": labels(g.members),
                    "memberIds": list(g.members),
                    "managers": labels(g.managers),
                    "managerIds": list(g.managers),
                    "visibleMembers": labels(g.visible_members),
                    "visibleManagers": labels(g.visible_managers),
                    "extra": self._readable_extra(g),
                }
                for g in self.groups.values()
            ],
            "categories": [
                {
                    "id": c.id,
                    "ref": c.ref,
                    "title": c.title,
                    "categoryType": c.category_type,
                    "forModelTypes": list(c.for_model_types),
                    "choiceOptions": None
                    if c.choice_options is None
                    else [
                        {"id": o.id, "ref": o.ref, "stringValue": o.string_value}
                        for o in c.choice_options
                    ],
                    **({} if c.max_length is None else {"maxLength": c.max_length}),
                }
                for c in self.categories.values()
            ],
            "clients": [
                {"clientId": c.client_id, "clientSecret": c.client_secret, "scopes": c.scopes}
                for c in self.clients.values()
            ],
            "invites": self.invites,
            "pendingMembershipChanges": self.pending_changes,
        }

    def load(self, data: dict[str, Any]) -> None:
        """Add what `data` (a dump or a seed) describes to the store.

        Members and managers are given by user ref or id (`memberIds` wins when present);
        membership loaded this way is visible at once.
        """
        for category in data.get("categories") or []:
            self.add_category(category)
        for client in data.get("clients") or []:
            self.add_client(client)
        for item in data.get("users") or []:
            fields = {k: v for k, v in item.items() if k in USER_FIELDS}
            user = self.create_user(
                fields, send_invite=False, user_id=normalise_uuid(item.get("id"))
            )
            user.invited = bool(item.get("invited", False))
            if item.get("archivedAt") and user.archived:
                user.archived_at = str(item["archivedAt"])
            if item.get("createdAt"):
                user.created_at = str(item["createdAt"])
            if item.get("extra"):
                self.load_extra("USER", user, item["extra"])
        for item in data.get("groups") or []:
            fields = {k: v for k, v in item.items() if k in GROUP_FIELDS}
            group = self.create_group(fields, group_id=normalise_uuid(item.get("id")))
            for relation, ids_key in (("members", "memberIds"), ("managers", "managerIds")):
                rel: Relation = "members" if relation == "members" else "managers"
                names = item.get(ids_key) or item.get(relation) or []
                for name in names:
                    member = self.find_user(id=name) if normalise_uuid(name) else None
                    member = member or self.find_user(ref=name)
                    if member is None:
                        raise SandboxError(
                            f"group {group.label!r}: unknown user {name!r} in {relation}",
                            NOT_FOUND,
                        )
                    group.applied(rel)[member.id] = None
                    group.visible(rel)[member.id] = None
            if item.get("extra"):
                self.load_extra("GROUP", group, item["extra"])
        if "invites" in data:
            self.invites = int(data["invites"] or 0)
        self.touch()


def _apply_visible(group: Group, relation: Relation, op: str, user_id: str) -> None:
    visible = group.visible(relation)
    if op == "add":
        visible[user_id] = None
    else:
        visible.pop(user_id, None)


def _matches(needle: str, *texts: str | None) -> bool:
    return any(t is not None and needle in t.casefold() for t in texts)
