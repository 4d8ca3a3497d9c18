"""Config models of the source adapters; `type:` picks the adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from sync.config.paths import ConfigPath


class _SourceBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Shown in errors and reports")
    mapping: ConfigPath = Field(description="Mapping file (mappings/*.yaml) for this source")


class _CsvOptions(BaseModel):
    encoding: str = Field(
        "auto", description="auto = UTF-8 (BOM or not), then cp1252, then Latin-1"
    )
    delimiter: str = Field(
        "auto", description="auto = sniff comma, semicolon, tab or pipe; or the character"
    )
    pick: Literal["newest", "all"] = Field("newest", description="When a glob matches several")


class CsvSourceConfig(_SourceBase, _CsvOptions):
    type: Literal["csv"]
    path: str = Field(description="File path or glob, relative to the config file")
    archive_dir: ConfigPath | None = Field(
        None, description="Move processed files here after a real run"
    )


class SftpSourceConfig(_SourceBase, _CsvOptions):
    type: Literal["sftp"]
    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str
    password: SecretStr | None = None
    private_key: ConfigPath | None = None
    private_key_passphrase: SecretStr | None = None
    known_hosts: ConfigPath | None = None
    host_key_fingerprint: str | None = Field(
        None, description="Pinned SHA256:... fingerprint, instead of known_hosts"
    )
    path: str = Field(description="Remote path or glob")
    archive_dir: str | None = Field(None, description="Move processed files here after a run")
    timeout: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _auth_and_host_key(self) -> SftpSourceConfig:
        if self.password is None and self.private_key is None:
            raise ValueError("one of password or private_key is required")
        if self.known_hosts is None and self.host_key_fingerprint is None:
            raise ValueError(
                "one of known_hosts or host_key_fingerprint is required "
                "(host keys are never accepted blindly)"
            )
        return self


class DatabaseSourceConfig(_SourceBase):
    type: Literal["database"]
    url: SecretStr = Field(description="SQLAlchemy URL, from ${ENV}")
    table: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _table_or_query(self) -> DatabaseSourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("exactly one of table or query is required")
        return self


SourceConfig = CsvSourceConfig | SftpSourceConfig | DatabaseSourceConfig

__all__ = [
    "CsvSourceConfig",
    "DatabaseSourceConfig",
    "Path",
    "SftpSourceConfig",
    "SourceConfig",
]
