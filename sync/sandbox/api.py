"""The GraphQL side: schema.graphql plus resolvers over the store, run by graphql-core.

Root fields check the token's scopes themselves, so a forbidden field is a GraphQL
error on its own path (`extensions.code` "PermissionDenied", the message names the
missing scope) while its siblings still run; the server answers 403 only when every
root field of the request was forbidden. Mutation fields run one after the other, each
failing or succeeding on its own path, which is what a batch of aliased upserts needs.

Resolvers are synchronous (the store is in memory); the execution result is awaited
when graphql-core hands back an awaitable, so async resolvers would work as well.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLSyntaxError,
    GraphQLUnionType,
    StringValueNode,
    ValueNode,
    build_schema,
    execute,
    parse,
    validate,
)

from sync.sandbox.counters import Counters
from sync.sandbox.faults import Faults
from sync.sandbox.store import (
    INVALID,
    PERMISSION_DENIED,
    Group,
    SandboxError,
    Store,
    User,
    normalise_uuid,
)

log = logging.getLogger(__name__)

# One contract file for the client and its look-alike, so they cannot drift apart.
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "pluvo" / "schema.graphql"

Resolver = Callable[..., Any]
Info: TypeAlias = "GraphQLResolveInfo[Any]"


@dataclass
class Context:
    """One request's view: the store, its settings, the token's scopes, the clock."""

    store: Store
    faults: Faults
    counters: Counters
    scopes: frozenset[str]
    now: float
    root_calls: int = 0
    root_denied: int = 0
    mutated: bool = False


def _ctx(info: Info) -> Context:
    context: Context = info.context
    return context


def require_scopes(ctx: Context, field: str, scopes: Sequence[str]) -> None:
    missing = [s for s in scopes if s not in ctx.scopes]
    if missing:
        ctx.root_denied += 1
        granted = " ".join(sorted(ctx.scopes)) or "none"
        raise SandboxError(
            f"Permission denied: {field} needs the scope {' and '.join(missing)} "
            f"(the token has: {granted}).",
            PERMISSION_DENIED,
        )


# --------------------------------------------------------------- pagination


def cursor_for(index: int) -> str:
    return base64.b64encode(f"arrayconnection:{index}".encode()).decode()


def index_of(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        prefix, _, number = text.partition(":")
        if prefix != "arrayconnection":
            raise ValueError(prefix)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SandboxError(f"invalid cursor {cursor!r}") from None


def connection(items: Sequence[Any], args: dict[str, Any], ctx: Context, field: str) -> Any:
    """A Relay connection over `items`; `first` defaults to (and is capped at) the limit."""
    limit = ctx.faults.max_page_size
    first = args.get("first")
    if first is None:
        first = limit
    if first < 0:
        raise SandboxError(f"first: must not be negative (got {first})", INVALID)
    if first > limit:
        raise SandboxError(
            f"Requesting {first} records on the `{field}` connection exceeds the "
            f"`first` limit of {limit} records.",
            INVALID,
        )
    start = 0
    if args.get("after") is not None:
        start = index_of(args["after"]) + 1
    if args.get("offset"):
        start += max(0, int(args["offset"]))
    start = max(0, start)
    end = min(len(items), start + first)
    page = items[start:end] if start < end else []
    edges = [{"node": node, "cursor": cursor_for(start + i)} for i, node in enumerate(page)]
    return {
        "count": len(items),
        "edges": edges,
        "pageInfo": {
            "hasNextPage": end < len(items),
            "hasPreviousPage": start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


# ---------------------------------------------------------------- resolvers

ROOT: dict[tuple[str, str], tuple[tuple[str, ...], Resolver]] = {}
FIELDS: dict[tuple[str, str], Resolver] = {}


def root(type_name: str, field: str, *scopes: str) -> Callable[[Resolver], Resolver]:
    def register(func: Resolver) -> Resolver:
        ROOT[(type_name, field)] = (scopes, func)
        return func

    return register


def field_of(type_name: str, field: str) -> Callable[[Resolver], Resolver]:
    def register(func: Resolver) -> Resolver:
        FIELDS[(type_name, field)] = func
        return func

    return register


def _user_input(args: dict[str, Any]) -> dict[str, Any]:
    fields = args.get("user")
    return dict(fields) if fields else {}


def _send_invite(ctx: Context, args: dict[str, Any]) -> bool:
    value = args.get("sendInvite")
    return ctx.faults.invite_default if value is None else bool(value)


@root("Query", "user", "users.read")
def q_user(_src: Any, info: Info, **args: Any) -> User | None:
    store = _ctx(info).store
    if args.get("id") is None and args.get("ref") is None and args.get("email") is None:
        raise SandboxError("give id, ref or email")
    return store.find_user(id=args.get("id"), ref=args.get("ref"), email=args.get("email"))


@root("Query", "users", "users.read")
def q_users(_src: Any, info: Info, **args: Any) -> list[User]:
    return _ctx(info).store.list_users(active=args.get("active"))


@root("Query", "paginatedUsers", "users.read")
def q_paginated_users(_src: Any, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    archived = args.get("archived")
    if archived is None and not ctx.faults.archived_unasked:
        archived = False
    users = ctx.store.list_users(archived=archived, q=args.get("q"))
    return connection(users, args, ctx, "paginatedUsers")


@root("Query", "group", "groups.read")
def q_group(_src: Any, info: Info, **args: Any) -> Group | None:
    if args.get("id") is None and args.get("ref") is None:
        raise SandboxError("give id or ref")
    return _ctx(info).store.find_group(id=args.get("id"), ref=args.get("ref"))


@root("Query", "groups", "groups.read")
def q_groups(_src: Any, info: Info, **_args: Any) -> list[Group]:
    return _ctx(info).store.list_groups()


@root("Query", "paginatedGroups", "groups.read")
def q_paginated_groups(_src: Any, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    return connection(ctx.store.list_groups(q=args.get("q")), args, ctx, "paginatedGroups")


@root("Query", "extraCategories", "users.read")
def q_extra_categories(_src: Any, info: Info, **args: Any) -> Any:
    return _ctx(info).store.categories_for(args.get("contentType"))


@root("Mutation", "createUser", "users.write")
def m_create_user(_src: Any, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    invite = _send_invite(ctx, args)
    user = ctx.store.create_user(_user_input(args), send_invite=invite)
    if invite:
        ctx.counters.invites += 1
    return {"user": user}


@root("Mutation", "updateUser", "users.write")
def m_update_user(_src: Any, info: Info, **args: Any) -> Any:
    store = _ctx(info).store
    user = store.require_user(id=args.get("id"), ref=args.get("ref"))
    return {"user": store.update_user(user, _user_input(args))}


@root("Mutation", "updateOrCreateUser", "users.write")
def m_update_or_create_user(_src: Any, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    invite = _send_invite(ctx, args)
    user, created = ctx.store.upsert_user(
        ref=args.get("ref"), email=args.get("email"), fields=_user_input(args), send_invite=invite
    )
    if created and invite:
        ctx.counters.invites += 1
    return {"user": user, "created": created}


@root("Mutation", "archiveUsers", "users.write")
def m_archive_users(_src: Any, info: Info, **args: Any) -> Any:
    succeeded, failed = _ctx(info).store.archive_users(bool(args["archive"]), args["ids"])
    return {"response": {"succeededIds": succeeded, "failedIds": failed}}


@root("Mutation", "createGroup", "groups.write")
def m_create_group(_src: Any, info: Info, **args: Any) -> Any:
    return {"group": _ctx(info).store.create_group(dict(args["group"]))}


@root("Mutation", "updateGroup", "groups.write")
def m_update_group(_src: Any, info: Info, **args: Any) -> Any:
    store = _ctx(info).store
    group = store.require_group(id=args.get("id"), ref=args.get("ref"))
    return {"group": store.update_group(group, dict(args["group"]))}


@root("Mutation", "deleteGroups", "groups.write")
def m_delete_groups(_src: Any, info: Info, **args: Any) -> Any:
    succeeded, failed = _ctx(info).store.delete_groups(args.get("ids") or [])
    return {"bulkDelete": {"succeededIds": succeeded, "failedIds": failed}}


def _membership(info: Info, args: dict[str, Any], op: str, relation: str) -> Any:
    ctx = _ctx(info)
    store = ctx.store
    group = store.require_group(id=args.get("groupId"), ref=args.get("groupRef"))
    users, failed = store.resolve_users(args.get("userIds"), args.get("userRefs"))
    changed, unchanged = store.change_relation(
        group,
        "members" if relation == "members" else "managers",
        "add" if op == "add" else "remove",
        users,
        now=ctx.now,
        delay=ctx.faults.membership_delay,
    )
    if relation == "managers":
        return {"response": {"succeededIds": [u.id for u in users], "failedIds": failed}}
    done, already = ("added", "alreadyAdded") if op == "add" else ("removed", "alreadyRemoved")
    return {
        f"{done}Ids": [u.id for u in changed],
        f"{already}Ids": [u.id for u in unchanged],
        "failedIds": failed,
        f"{done}Refs": [u.label for u in changed],
        f"{already}Refs": [u.label for u in unchanged],
        "failedRefs": failed,
    }


@root("Mutation", "addUsersToGroup", "groups.write")
def m_add_users(_src: Any, info: Info, **args: Any) -> Any:
    return _membership(info, args, "add", "members")


@root("Mutation", "removeUsersFromGroup", "groups.write")
def m_remove_users(_src: Any, info: Info, **args: Any) -> Any:
    return _membership(info, args, "remove", "members")


@root("Mutation", "addManagersToGroup", "groups.write")
def m_add_managers(_src: Any, info: Info, **args: Any) -> Any:
    return _membership(info, args, "add", "managers")


@root("Mutation", "removeManagersFromGroup", "groups.write")
def m_remove_managers(_src: Any, info: Info, **args: Any) -> Any:
    return _membership(info, args, "remove", "managers")


@root("Mutation", "updateExtraCategoryValues", "extra_categories.write")
def m_update_extra_values(_src: Any, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    content_type = str(args["contentType"])
    model_scope = "groups.write" if content_type == "GROUP" else "users.write"
    require_scopes(ctx, "updateExtraCategoryValues", [model_scope])
    store = ctx.store
    model = store.find_model(
        content_type, model_id=args.get("modelId"), model_ref=args.get("modelRef")
    )
    store.set_extra_values(content_type, model, args["values"], mode=ctx.faults.extra_values_mode)
    return {"extraCategoryValues": store.extra_values_of(model)}


@field_of("User", "extraCategoryValues")
@field_of("Group", "extraCategoryValues")
def f_extra_values(model: User | Group, info: Info, **_args: Any) -> Any:
    return _ctx(info).store.extra_values_of(model)


@field_of("User", "participantGroups")
def f_participant_groups(user: User, info: Info, **_args: Any) -> Any:
    return _ctx(info).store.groups_of(user, "members")


@field_of("User", "managerGroups")
def f_manager_groups(user: User, info: Info, **_args: Any) -> Any:
    return _ctx(info).store.groups_of(user, "managers")


@field_of("Group", "users")
def f_group_users(group: Group, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    return connection(ctx.store.visible_users(group, "members"), args, ctx, "users")


@field_of("Group", "managers")
def f_group_managers(group: Group, info: Info, **args: Any) -> Any:
    ctx = _ctx(info)
    return connection(ctx.store.visible_users(group, "managers"), args, ctx, "managers")


@field_of("Group", "userCount")
def f_user_count(group: Group, info: Info, **_args: Any) -> int:
    return len(_ctx(info).store.visible_users(group, "members"))


@field_of("Group", "managerCount")
def f_manager_count(group: Group, info: Info, **_args: Any) -> int:
    return len(_ctx(info).store.visible_users(group, "managers"))


_SNAKE: dict[str, str] = {}


def _snake(name: str) -> str:
    cached = _SNAKE.get(name)
    if cached is None:
        cached = "".join("_" + c.lower() if c.isupper() else c for c in name)
        _SNAKE[name] = cached
    return cached


def default_resolver(source: Any, info: Info, **_args: Any) -> Any:
    """Dicts by key, the store's dataclasses by snake_case attribute."""
    name = info.field_name
    if isinstance(source, dict):
        return source.get(name)
    return getattr(source, _snake(name), None)


def _guarded(type_name: str, field: str, scopes: tuple[str, ...], func: Resolver) -> Resolver:
    is_mutation = type_name == "Mutation"

    def resolve(source: Any, info: Info, **args: Any) -> Any:
        ctx = _ctx(info)
        (ctx.counters.mutations if is_mutation else ctx.counters.queries)[field] += 1
        ctx.root_calls += 1
        require_scopes(ctx, field, scopes)
        if is_mutation:
            ctx.mutated = True
        return func(source, info, **args)

    return resolve


# ---------------------------------------------------------------- scalars


def _uuid_value(value: Any) -> str:
    normal = normalise_uuid(value) if isinstance(value, str) else None
    if normal is None:
        raise GraphQLError(f"UUID cannot represent value: {value!r}")
    return normal


def _uuid_literal(node: ValueNode, _variables: Any = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("UUID cannot represent a non-string value.")
    return _uuid_value(node.value)


def _json_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _resolve_type(value: Any, _info: Info, _type: Any) -> str | None:
    if isinstance(value, dict):
        typename = value.get("__typename")
        return str(typename) if typename else None
    return None


def _scalar(
    schema: GraphQLSchema,
    name: str,
    *,
    output: Callable[[Any], Any],
    value: Callable[[Any], Any] | None = None,
    literal: Callable[..., Any] | None = None,
) -> None:
    """Give a built scalar its coercion, under both graphql-core 3.2 and 3.3 names."""
    scalar = schema.get_type(name)
    if not isinstance(scalar, GraphQLScalarType):
        return
    setattr(scalar, "serialize", output)  # noqa: B010 - instance override of a method
    if hasattr(scalar, "coerce_output_value"):
        setattr(scalar, "coerce_output_value", output)  # noqa: B010
    if value is not None:
        setattr(scalar, "parse_value", value)  # noqa: B010
        if hasattr(scalar, "coerce_input_value"):
            setattr(scalar, "coerce_input_value", value)  # noqa: B010
    if literal is not None:
        setattr(scalar, "parse_literal", literal)  # noqa: B010


# ---------------------------------------------------------------- the API


@dataclass
class Outcome:
    """What the server needs to answer: body, HTTP status, whether anything was written."""

    body: dict[str, Any]
    status: int
    mutated: bool


class GraphQLApi:
    """The executable schema and a cache of parsed, validated documents."""

    def __init__(self, schema_file: Path | None = None) -> None:
        self.schema_file = schema_file or SCHEMA_FILE
        self.schema = build_schema(self.schema_file.read_text(encoding="utf-8"))
        self._bind(self.schema)
        self._documents: dict[str, tuple[DocumentNode | None, list[GraphQLError]]] = {}

    @staticmethod
    def _bind(schema: GraphQLSchema) -> None:
        """Attach resolvers to the fields this schema has (another schema may lack some)."""
        for (type_name, field), (scopes, func) in ROOT.items():
            target = schema.get_type(type_name)
            if isinstance(target, GraphQLObjectType) and field in target.fields:
                target.fields[field].resolve = _guarded(type_name, field, scopes, func)
        for (type_name, field), func in FIELDS.items():
            target = schema.get_type(type_name)
            if isinstance(target, GraphQLObjectType) and field in target.fields:
                target.fields[field].resolve = func
        _scalar(schema, "UUID", output=str, value=_uuid_value, literal=_uuid_literal)
        _scalar(schema, "JSONString", output=_json_string)
        for named in schema.type_map.values():
            if isinstance(named, GraphQLUnionType):
                named.resolve_type = _resolve_type

    def document(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        cached = self._documents.get(query)
        if cached is not None:
            return cached
        try:
            document: DocumentNode | None = parse(query)
        except GraphQLError as error:
            outcome: tuple[DocumentNode | None, list[GraphQLError]] = (None, [error])
        else:
            assert document is not None
            errors = validate(self.schema, document)
            outcome = (None, list(errors)) if errors else (document, [])
        if len(self._documents) >= 512:
            self._documents.clear()
        self._documents[query] = outcome
        return outcome

    async def run(
        self,
        query: Any,
        variables: Any,
        operation_name: Any,
        context: Context,
    ) -> Outcome:
        if not isinstance(query, str) or not query.strip():
            return self._failed(context, "Must provide query string.", "BadRequest")
        if variables is not None and not isinstance(variables, dict):
            return self._failed(context, "Variables must be a JSON object.", "BadRequest")
        if operation_name is not None and not isinstance(operation_name, str):
            return self._failed(context, "operationName must be a string.", "BadRequest")
        document, errors = self.document(query)
        if document is None:
            code = "ParseError" if isinstance(errors[0], GraphQLSyntaxError) else "ValidationError"
            return Outcome(
                {"data": None, "errors": [self._format(e, context, code) for e in errors]},
                400,
                False,
            )
        result = execute(
            self.schema,
            document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=default_resolver,
        )
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [self._format(e, context) for e in result.errors]
        status = 200
        if result.data is None and result.errors:
            status = 400  # the variables did not fit, or no such operation
        elif context.root_calls and context.root_denied == context.root_calls:
            status = 403
        return Outcome(body, status, context.mutated)

    def _failed(self, context: Context, message: str, code: str) -> Outcome:
        context.counters.errors[code] += 1
        return Outcome(
            {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
            400,
            False,
        )

    @staticmethod
    def _format(error: GraphQLError, context: Context, default: str | None = None) -> Any:
        formatted: dict[str, Any] = dict(error.formatted)
        extensions = dict(formatted.get("extensions") or {})
        if "code" not in extensions:
            original = error.original_error
            if original is not None and not isinstance(original, GraphQLError | SandboxError):
                log.error("sandbox resolver failed: %s", original, exc_info=original)
                code = "InternalError"
            elif default is not None:
                code = default
            elif error.path is None:
                code = "BadRequest"  # variables that do not fit, unknown operation name
            else:
                code = "InternalError"  # e.g. null for a non-null field: a sandbox bug
            extensions["code"] = code
        formatted["extensions"] = extensions
        context.counters.errors[str(extensions["code"])] += 1
        return formatted
