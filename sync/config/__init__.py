"""One typed config, validated in one pass.

The YAML file is parsed, `${ENV}` references are interpolated, and the whole tree is
validated at once so that a user sees every mistake in one go, each with its path
(`sources[1].host: field required`). Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sync.config.paths import ConfigPath
from sync.config.pluvo import PluvoConfig
from sync.config.sources import CsvSourceConfig, DatabaseSourceConfig, SftpSourceConfig
from sync.errors import ConfigError

DEFAULT_CONFIG = "config.yaml"
CONFIG_ENV = "PLUVO_SYNC_CONFIG"

_SOURCE_TAGS = frozenset({"csv", "sftp", "database"})
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateConfig(_Strict):
    url: SecretStr = Field(
        SecretStr("sqlite:///pluvo-sync.db"),
        description="SQLAlchemy URL of the state store; relative SQLite paths follow the config",
    )

    @field_validator("url")
    @classmethod
    def _a_url(cls, value: SecretStr) -> SecretStr:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        text = value.get_secret_value()
        try:
            url = make_url(text)
        except ArgumentError:
            hint = f" (a SQLite file is written sqlite:///{text})" if "://" not in text else ""
            raise ValueError(f"not a database URL{hint}") from None
        try:
            url.get_dialect()
        except ArgumentError:  # NoSuchModuleError: no such database kind or driver
            raise ValueError(
                f"unknown database kind {url.drivername!r} "
                "(sqlite:///FILE, or postgresql+psycopg://USER@HOST/DB)"
            ) from None
        if url.get_backend_name() == "sqlite" and (url.host or not url.database):
            # sqlite://state.db names a host SQLite has not; sqlite:/// names no file
            # (an in-memory store, forgetting everything it applied when the run ends).
            named = url.host or url.database or ""
            raise ValueError(
                "a SQLite store is a file: sqlite:///"
                + (named or "FILE")
                + " (relative to the config's folder) or sqlite:////ABSOLUTE/PATH"
            )
        return value


class Limit(_Strict):
    """A guard bound: exceeded when either the share or the count is exceeded."""

    share: float | None = Field(None, ge=0, le=1)
    count: int | None = Field(None, ge=0)


HoldClass = Literal["leavers", "removals", "overwrites"]
"""The risky classes of change a run can hold back (sync.core.hold)."""


class SafetyConfig(_Strict):
    max_leavers: Limit = Field(default_factory=lambda: Limit(share=0.05, count=50))
    max_changes: Limit = Field(default_factory=lambda: Limit(share=0.5, count=None))
    min_source_ratio: float | None = Field(
        0.8, ge=0, le=1, description="Stop when a source shrinks below this share of its median"
    )
    source_history_runs: int = Field(5, ge=1, description="Successful runs the ratio looks back on")
    allow_empty_source: bool = False
    on_exceed: Literal["stop", "hold"] = Field(
        "stop",
        description="A tripped guard stops the whole run (stop), or holds only the risky "
        "changes it is about and applies the rest (hold, exit 7)",
    )
    hold: list[HoldClass] = Field(
        default_factory=list,
        description="Classes of change always held for an explicit `release`",
    )

    @field_validator("hold")
    @classmethod
    def _once_each(cls, value: list[HoldClass]) -> list[HoldClass]:
        return list(dict.fromkeys(value))


class LeaverConfig(_Strict):
    action: Literal["archive", "deactivate", "ignore"] = "archive"
    archive_method: Literal["upsert", "bulk", "update"] = Field(
        "upsert", description="Which of Pluvo's three documented ways archives a user"
    )
    grace_runs: int = Field(1, ge=0, description="Runs a user must be missing before acting")
    grace_days: float = Field(0, ge=0, description="Days a user must be missing before acting")


MatchKey = Literal["ref", "email"]
_DEFAULT_MATCH: tuple[MatchKey, ...] = ("ref", "email")


class AdoptionConfig(_Strict):
    match: list[MatchKey] = Field(default_factory=lambda: list(_DEFAULT_MATCH))


class ReportConfig(_Strict):
    dir: ConfigPath = Field(Path("reports"), description="JSON reports and rejection CSVs")
    keep_days: int | None = Field(
        90, ge=1, description="Delete the tool's report files older than this (empty: keep all)"
    )


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["human", "json"] = "human"


SourceEntry = Annotated[
    CsvSourceConfig | SftpSourceConfig | DatabaseSourceConfig, Field(discriminator="type")
]


class Config(_Strict):
    """The whole configuration; `base_dir` is the folder of the file it came from."""

    pluvo: PluvoConfig
    sources: list[SourceEntry] = Field(min_length=1)
    state: StateConfig = Field(default_factory=StateConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    leavers: LeaverConfig = Field(default_factory=LeaverConfig)
    adoption: AdoptionConfig = Field(default_factory=AdoptionConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _defaults_beside_the_config(self) -> Config:
        """Default paths too are relative to the config file (cron runs from anywhere)."""
        _anchor_report_dir(self.report, self.base_dir)
        return self

    def state_url(self) -> str:
        """The state URL with a relative SQLite path anchored at the config's folder."""
        return _anchored_state_url(self.state.url.get_secret_value(), self.base_dir)


LOCAL_SECTIONS = ("state", "report", "logging")


class LocalConfig(_Strict):
    """What the offline commands (`status`, `history`) read: the store, the report
    folder and logging. The `pluvo` and `sources` sections are neither interpolated
    nor validated, so a monitoring job needs none of their secrets."""

    state: StateConfig = Field(default_factory=StateConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _defaults_beside_the_config(self) -> LocalConfig:
        _anchor_report_dir(self.report, self.base_dir)
        return self

    def state_url(self) -> str:
        return _anchored_state_url(self.state.url.get_secret_value(), self.base_dir)


def _anchor_report_dir(report: ReportConfig, base_dir: Path) -> None:
    if not report.dir.is_absolute():
        report.dir = base_dir / report.dir


def _anchored_state_url(url: str, base_dir: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str((base_dir / rest).resolve())
    return url


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """`-c` wins, then $PLUVO_SYNC_CONFIG, then ./config.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def interpolate(tree: Any, env: dict[str, str] | None = None, *, source: str = "<config>") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; `$$` is a literal `$`.

    Missing variables are collected and reported together with their config path,
    so the user can fix all of them at once.
    """
    environ = dict(os.environ) if env is None else env
    missing: list[str] = []

    def sub(value: str, path: str) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            missing.append(f"{source}: {path or '<root>'}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(one, value)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str):
            return sub(node, path)
        return node

    result = walk(tree, "")
    if missing:
        raise ConfigError("\n".join(missing))
    return result


def validation_lines(
    error: ValidationError,
    *,
    tags: frozenset[str] = frozenset(),
    model: type[BaseModel] | None = None,
) -> list[str]:
    """`sources[1].host: Field required` lines, never echoing the offending value.

    Tagged unions insert their tag after the list index (`sources[1].sftp.host`); users
    know the entry by its position, so a tag in `tags` is dropped from the path.
    """
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        path = ""
        previous: object = None
        for part in item["loc"]:
            if isinstance(previous, int) and part in tags:
                previous = part
                continue
            previous = part
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(str(item["loc"][-1]), model or Config)
        lines.append(f"{path or '<root>'}: {message}")
    return lines


def _keys(model: type[BaseModel]) -> set[str]:
    """Every key a config may hold, at any depth (for "did you mean")."""
    found: set[str] = set()
    pending: list[Any] = [model]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            for name, info in item.model_fields.items():
                if not info.exclude:
                    found.add(name)
                    pending.append(info.annotation)
        else:
            pending.extend(typing.get_args(item))
    return found


def _did_you_mean(key: str, model: type[BaseModel]) -> str:
    close = difflib.get_close_matches(key, sorted(_keys(model)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_validation_error(error: ValidationError, *, source: str) -> str:
    """One line per mistake, each naming the file and the key."""
    return "\n".join(f"{source}: {line}" for line in validation_lines(error, tags=_SOURCE_TAGS))


def parse_config(
    data: Any, *, base_dir: Path, source: str = "<config>", env: dict[str, str] | None = None
) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    data = interpolate(data, env, source=source)
    try:
        return Config.model_validate({**data, "base_dir": base_dir}, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=source)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, interpolate and validate a config file; every problem is a ConfigError."""
    file, data = _read(path)
    return parse_config(data, base_dir=file.resolve().parent, source=str(file))


def load_local_config(path: str | os.PathLike[str] | None = None) -> LocalConfig:
    """The config as the offline commands need it: the state store, reports and logging,
    validated as strictly as by `load_config`, without the `pluvo` and `sources`
    sections (and so without their environment variables). Unknown top-level keys are
    still mistakes."""
    file, data = _read(path)
    source = str(file)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    known = {name for name, info in Config.model_fields.items() if not info.exclude}
    unknown = [
        f"{source}: {key}: unknown key{_did_you_mean(str(key), Config)}"
        for key in data
        if key not in known
    ]
    if unknown:
        raise ConfigError("\n".join(unknown))
    local = interpolate({k: data[k] for k in LOCAL_SECTIONS if k in data}, source=source)
    base_dir = file.resolve().parent
    try:
        return LocalConfig.model_validate(
            {**local, "base_dir": base_dir}, context={"base_dir": base_dir}
        )
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=source)) from None


def _read(path: str | os.PathLike[str] | None) -> tuple[Path, Any]:
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {file} not found",
            hint="pass -c PATH or set PLUVO_SYNC_CONFIG; "
            "`pluvo-sync init DIR` writes a commented one",
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{file}{where}: not valid YAML") from None
    return file, data
