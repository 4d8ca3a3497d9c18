"""Where the client learns the GraphQL type of each argument it sends as a variable.

A document with variables must declare each variable's type (`$a0_user: UserInput!`),
and those type names are exactly what the documentation generations disagree on. So
they are never written by hand: they come from a schema, by default the bundled one
(`schema.graphql`, the best-known contract, kept identical to the sandbox's), or one
introspected from the live Pluvo by `doctor` and handed to `PluvoClient(schema=...)`.
A field or argument the schema does not know has no type; the client then sends that
call with literals, which need names only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from graphql import GraphQLObjectType, GraphQLSchema, build_schema

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")


def schema_file() -> Path:
    """The bundled schema: the client's contract, and what the sandbox serves."""
    return SCHEMA_FILE


@cache
def bundled_schema() -> GraphQLSchema:
    """Built once per process: building takes milliseconds, but clients come and go."""
    return build_schema(schema_file().read_text(encoding="utf-8"))


class ArgumentTypes:
    """`(operation, field, argument) -> "UserInput!"`, memoised per schema.

    Lookups run for every call of every batch, so answers (misses included) are kept;
    the set of fields and arguments a sync uses is small. `inline_fields` are fields
    the client stopped sending with variables after Pluvo refused their types.
    """

    def __init__(
        self, schema: GraphQLSchema, *, inline_fields: frozenset[str] = frozenset()
    ) -> None:
        self.schema = schema
        self.inline_fields = inline_fields
        self._known: dict[tuple[str, str, str], str | None] = {}

    def without(self, fields: frozenset[str]) -> ArgumentTypes:
        """A lookup that also leaves `fields` untyped (a new object: renderings are
        memoised per lookup, so changing this one in place would leave stale entries).
        """
        return ArgumentTypes(self.schema, inline_fields=self.inline_fields | fields)

    def type_of(self, operation: Literal["mutation", "query"], field: str, arg: str) -> str | None:
        key = (operation, field, arg)
        try:
            return self._known[key]
        except KeyError:
            pass
        if field in self.inline_fields:
            self._known[key] = None
            return None
        root: GraphQLObjectType | None = (
            self.schema.mutation_type if operation == "mutation" else self.schema.query_type
        )
        definition = root.fields.get(field) if root is not None else None
        argument = definition.args.get(arg) if definition is not None else None
        found = str(argument.type) if argument is not None else None
        self._known[key] = found
        return found


@cache
def _bundled_types() -> ArgumentTypes:
    return ArgumentTypes(bundled_schema())


def argument_types(schema: GraphQLSchema | None = None) -> ArgumentTypes:
    """Types from `schema`, or the shared lookup over the bundled schema."""
    return _bundled_types() if schema is None else ArgumentTypes(schema)
