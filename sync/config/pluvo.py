"""Settings of the Pluvo client, validated with the rest of the config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_SCOPES = [
    "users.read",
    "users.write",
    "groups.read",
    "groups.write",
    "extra_categories.write",
]


class PluvoConfig(BaseModel):
    """Where the organisation lives, how to authenticate, and how hard to push."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Organisation base URL, e.g. https://acme.pluvo.com/")
    client_id: str
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request")
    connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to open a connection (an unreachable Pluvo fails fast)"
    )
    batch_size: int = Field(25, ge=1, le=200, description="Mutations per aliased request")
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at most")
    max_retries: int = Field(6, ge=0, le=20)
    outage_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds without any answer from Pluvo after which the run stops "
        "(what was not sent is planned again by the next run)",
    )
    backoff_base: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)
    requests_per_second: float | None = Field(None, gt=0, description="Client-side throttle")
    token_refresh_margin: float = Field(
        3600.0, ge=0, description="Renew the token this many seconds before it expires"
    )
    send_invite: bool = Field(False, description="Sent explicitly on every user upsert")
    inline_arguments: bool = Field(
        False,
        description="Send arguments as GraphQL literals instead of variables (slower: "
        "every batch is a new document for Pluvo to parse); for a Pluvo whose type "
        "names do not match the schema",
    )
    membership_result_fields: Literal["ids", "refs"] = Field(
        "ids",
        description="Membership result generation: addedIds... (newest) or addedRefs... (older)",
    )

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        # Pluvo answers a missing trailing slash with a redirect that drops POST bodies.
        return value if value.endswith("/") else value + "/"

    @property
    def graphql_url(self) -> str:
        return self.url + "graphql/"

    @property
    def token_url(self) -> str:
        return self.url + "oauth/token/"
