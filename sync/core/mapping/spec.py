"""The mapping file: how one source's raw HR columns become Pluvo users, values and groups.

It is validated in one pass, like the config, so the integration engineer sees every
mistake at once, each with its key path (`users.email.transforms[1].no_match: ...`).
Shorthands keep the common case short: a field given as a plain string is a column
name, a transform given as a plain string is a simple text operation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sync.config import validation_lines
from sync.core.mapping.template import Template, TemplateError, parse_template
from sync.errors import ConfigError

ROLES = ("PARTICIPANT", "TRAINER", "AUTHOR", "PLANNER", "MANAGER", "OWNER")
LANGUAGES = ("NL", "EN", "DE", "FR")

DEFAULT_TRUE = ("ja", "j", "yes", "y", "true", "waar", "1", "x")
DEFAULT_FALSE = ("nee", "n", "no", "false", "onwaar", "0")

SimpleTransform = Literal["strip", "lower", "upper", "title", "slug", "collapse_spaces"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class DefaultTransform(_Strict):
    """Fill empty values with a constant."""

    default: str


class MapTransform(_Strict):
    """A lookup table from HR values to the values Pluvo wants."""

    map: dict[str, str]
    no_match: Literal["keep", "reject", "default"] = "keep"
    default: str | None = None
    ignore_case: bool = True

    @model_validator(mode="after")
    def _default_needed(self) -> MapTransform:
        if self.no_match == "default" and self.default is None:
            raise ValueError("no_match: default needs a `default:` value")
        return self


class ReplaceTransform(_Strict):
    """A regular-expression substitution (Python `re` syntax, `\\1` for groups)."""

    replace: str
    with_: str = Field("", alias="with")

    _valid = field_validator("replace")(_check_regex)


class DateTransform(_Strict):
    """Parse a date with strptime formats (tried in order) into ISO `YYYY-MM-DD`."""

    date: list[str] = Field(min_length=1)

    @field_validator("date", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


_TRANSFORM_KEYS = ("map", "replace", "date", "default")


def _transform_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "simple"
    if isinstance(value, dict):
        for key in _TRANSFORM_KEYS:
            if key in value:
                return key
    if isinstance(value, BaseModel):
        return {
            MapTransform: "map",
            ReplaceTransform: "replace",
            DateTransform: "date",
            DefaultTransform: "default",
        }.get(type(value))
    return None


Transform = Annotated[
    Annotated[SimpleTransform, Tag("simple")]
    | Annotated[MapTransform, Tag("map")]
    | Annotated[ReplaceTransform, Tag("replace")]
    | Annotated[DateTransform, Tag("date")]
    | Annotated[DefaultTransform, Tag("default")],
    Discriminator(
        _transform_kind,
        custom_error_type="invalid_transform",
        custom_error_message=(
            "a transform is one of strip, lower, upper, title, slug, collapse_spaces, "
            "or a mapping with one of the keys map, replace, date, default"
        ),
    ),
]
TRANSFORM_TAGS = frozenset({"simple", *_TRANSFORM_KEYS})


def _column_shorthand(data: Any) -> Any:
    return {"column": data} if isinstance(data, str) else data


class ValueSpec(_Strict):
    """Where a value comes from (exactly one of column, template, value) and how it is cleaned.

    Every source value is stripped first; `transforms` then run in order; `default`
    fills what is still empty at the end.
    """

    column: str | None = None
    template: str | None = None
    value: str | None = None
    transforms: list[Transform] = Field(default_factory=list)
    default: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _column_shorthand(data)

    @model_validator(mode="after")
    def _one_origin(self) -> ValueSpec:
        given = [k for k in ("column", "template", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of column, template or value is required")
        if self.template is not None:
            try:
                parse_template(self.template)
            except TemplateError as exc:
                raise ValueError(f"template: {exc}") from None
        return self

    def parsed_template(self) -> Template | None:
        return None if self.template is None else parse_template(self.template)

    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        template = self.parsed_template()
        return template.columns if template is not None else []


class BooleanWords(_Strict):
    """Words read as true/false (compared case-insensitively, after stripping).

    Named truthy/falsy because YAML itself reads bare `true:`/`yes:` keys as booleans.
    """

    truthy: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUE))
    falsy: list[str] = Field(default_factory=lambda: list(DEFAULT_FALSE))


class RolesSpec(ValueSpec):
    split: str | None = Field(",", description="Separator between several roles in one cell")


class ActiveSpec(ValueSpec):
    booleans: BooleanWords | None = None


class DateField(ValueSpec):
    format: list[str] = Field(default_factory=lambda: ["%Y-%m-%d"], min_length=1)

    @field_validator("format", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class UsersSpec(_Strict):
    ref: ValueSpec
    email: ValueSpec
    name: ValueSpec
    language: ValueSpec | None = None
    roles: RolesSpec | None = None
    active: ActiveSpec | None = None


class DatesSpec(_Strict):
    start_date: DateField | None = None
    end_date: DateField | None = None
    prehire_lead_days: int = Field(0, ge=0)
    end_date_inclusive: bool = True


class ExtraSpec(ValueSpec):
    category: str = Field(min_length=1, description="The extra category's categoryRef")
    type: Literal["string", "datetime", "boolean", "choice", "multiselect"]
    format: list[str] | None = None
    options: list[str] | None = None
    unknown: Literal["reject", "drop"] = "reject"
    separator: str = ","
    booleans: BooleanWords | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _per_type(self) -> ExtraSpec:
        if self.type in ("choice", "multiselect") and not self.options:
            raise ValueError(f"type {self.type} needs a non-empty `options:` list")
        if self.type not in ("choice", "multiselect") and self.options is not None:
            raise ValueError("`options:` is only for choice and multiselect")
        if self.format is not None and self.type != "datetime":
            raise ValueError("`format:` is only for datetime")
        return self


class Condition(_Strict):
    """A test on one column: its stripped value is one of `values`, or fully matches `regex`."""

    column: str
    values: list[str] | None = None
    regex: str | None = None
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if (self.values is None) == (self.regex is None):
            raise ValueError("exactly one of values or regex is required")
        return self


class FiltersSpec(_Strict):
    include: list[Condition] = Field(default_factory=list)
    exclude: list[Condition] = Field(default_factory=list)


def _check_template(value: str) -> str:
    try:
        parse_template(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return value


class GroupRule(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Name used by managers[].group")
    ref: str
    name: str

    _valid = field_validator("ref", "name")(_check_template)


class StaticGroup(_Strict):
    ref: str = Field(min_length=1)
    name: str = Field(min_length=1)


class GroupsSpec(_Strict):
    rules: list[GroupRule] = Field(default_factory=list)
    static: list[StaticGroup] = Field(default_factory=list)


class ManagerRule(_Strict):
    """Who manages a rule's group: the ref in `column`, or the row's own user `when` it holds."""

    group: str
    column: str | None = None
    when: Condition | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> ManagerRule:
        if (self.column is None) == (self.when is None):
            raise ValueError("exactly one of column or when is required")
        return self


class MappingSpec(_Strict):
    version: Literal[1] = 1
    users: UsersSpec
    dates: DatesSpec = Field(default_factory=DatesSpec)
    filters: FiltersSpec = Field(default_factory=FiltersSpec)
    booleans: BooleanWords = Field(default_factory=BooleanWords)
    extra: list[ExtraSpec] = Field(default_factory=list)
    groups: GroupsSpec = Field(default_factory=GroupsSpec)
    managers: list[ManagerRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_references(self) -> MappingSpec:
        ids = [rule.id for rule in self.groups.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"groups.rules: duplicate id(s) {', '.join(dupes)}")
        unknown = sorted({m.group for m in self.managers} - set(ids))
        if unknown:
            raise ValueError(
                f"managers: unknown group rule id(s) {', '.join(unknown)} "
                f"(known: {', '.join(ids) or 'none'})"
            )
        cats = [e.category for e in self.extra]
        dupes = sorted({c for c in cats if cats.count(c) > 1})
        if dupes:
            raise ValueError(f"extra: category {', '.join(dupes)} mapped more than once")
        return self

    def required_columns(self) -> list[str]:
        """Every column the mapping reads, in first-use order: a file lacking one is unusable."""
        return list(self.column_uses())

    def column_uses(self) -> dict[str, list[str]]:
        """Column → the mapping keys that read it (`users.ref`, `extra[2]`, ...)."""
        uses: dict[str, list[str]] = {}

        def use(columns: list[str], key: str) -> None:
            for column in columns:
                uses.setdefault(column, []).append(key)

        for name in ("ref", "email", "name", "language", "roles", "active"):
            spec = getattr(self.users, name)
            if spec is not None:
                use(spec.columns(), f"users.{name}")
        for name in ("start_date", "end_date"):
            spec = getattr(self.dates, name)
            if spec is not None:
                use(spec.columns(), f"dates.{name}")
        for i, extra in enumerate(self.extra):
            use(extra.columns(), f"extra[{i}]")
        for kind in ("include", "exclude"):
            for i, cond in enumerate(getattr(self.filters, kind)):
                use([cond.column], f"filters.{kind}[{i}]")
        for i, rule in enumerate(self.groups.rules):
            use(parse_template(rule.ref).columns, f"groups.rules[{i}].ref")
            use(parse_template(rule.name).columns, f"groups.rules[{i}].name")
        for i, manager in enumerate(self.managers):
            if manager.column is not None:
                use([manager.column], f"managers[{i}].column")
            if manager.when is not None:
                use([manager.when.column], f"managers[{i}].when")
        return uses


def _format_error(error: ValidationError, source: str) -> str:
    lines = validation_lines(error, tags=TRANSFORM_TAGS, model=MappingSpec)
    return f"invalid mapping file {source}:\n  " + "\n  ".join(lines)


def parse_mapping(data: Any, *, source: str = "<mapping>") -> MappingSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid mapping file {source}: the top level must be a mapping of keys")
    try:
        return MappingSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None


def load_mapping(path: str | Path) -> MappingSpec:
    """Read and validate a mapping file; every problem is a ConfigError naming the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"mapping file {file} not found") from None
    except OSError as exc:
        raise ConfigError(f"mapping file {file} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"mapping file {file}{where}: not valid YAML") from None
    return parse_mapping(data, source=str(file))
