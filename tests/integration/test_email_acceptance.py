"""The plan and Pluvo agree on emails: what the mapping accepts the sandbox accepts.

The sandbox refuses what Pluvo's Django EmailValidator refuses, so an address the
plan calls fine must be taken by an upsert over real HTTP, and one the sandbox refuses
must already have been rejected by the mapping, with its file, line, column and reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sync.core.mapping.mapper import map_source
from sync.core.mapping.merge import merge
from sync.core.mapping.spec import MappingSpec, parse_mapping
from sync.core.sources.csv import CsvParser
from sync.model import Desired
from sync.sandbox import SandboxServer
from tests.sandbox_fixture import SandboxHttp

TODAY = date(2025, 6, 1)
MAPPING = {"users": {"ref": "id", "email": "mail", "name": "naam"}}

UPSERT = """
mutation($ref: String, $user: UserInput!) {
  updateOrCreateUser(ref: $ref, sendInvite: false, user: $user) {
    created
    user { id ref email }
  }
}
"""


def mapping() -> MappingSpec:
    return parse_mapping(MAPPING)


def upsert(http: SandboxHttp, ref: str, email: str) -> dict[str, Any]:
    """The body of the upsert the executor sends for a new user (status checked)."""
    variables = {"ref": ref, "user": {"ref": ref, "name": f"Medewerker {ref}", "email": email}}
    status, body = http.gql(UPSERT, variables)
    assert status == 200, body
    return body


def refused_for_email(body: dict[str, Any]) -> bool:
    errors = body.get("errors") or []
    return any(e["message"].startswith("email: Enter a valid email address") for e in errors)


def rejection_rows(desired: Desired) -> dict[str, dict[str, Any]]:
    return {str(r["ref"]): dict(r) for _, r in desired.rejections.iterrows()}


# --- the example of the finding, through a real CSV file --------------------------------


def test_a_non_ascii_local_part_is_rejected_at_plan_time_and_refused_by_the_sandbox(
    tmp_path: Path, sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    export = tmp_path / "hr.csv"
    export.write_text(
        "id;naam;mail\n1;Jörg Müller;Jörg@Exämple.de\n2;Jorg Muller;Jorg@Exämple.de\n",
        encoding="utf-8",
    )
    parsed = CsvParser(source="hr").parse_path(export, "hr/hr.csv")
    desired = merge([map_source("hr", parsed.frame, mapping(), today=TODAY)])

    assert list(desired.users.index) == ["2"]
    assert desired.users.loc["2", "email"] == "jorg@exämple.de"
    [rejection] = desired.rejections.to_dict("records")
    assert (rejection["file"], rejection["line"], rejection["column"], rejection["ref"]) == (
        "hr/hr.csv",
        2,
        "mail",
        "1",
    )
    assert rejection["reason"] == (
        "invalid email 'jörg@exämple.de': "
        "non-ASCII characters before the @ (Pluvo allows them only after it)"
    )

    assert refused_for_email(upsert(sandbox_http, "1", "jörg@exämple.de"))
    accepted = upsert(sandbox_http, "2", "jorg@exämple.de")
    assert "errors" not in accepted, accepted
    assert accepted["data"]["updateOrCreateUser"]["created"] is True
    assert [u["email"] for u in sandbox.control.state()["users"]] == ["jorg@exämple.de"]


# --- every address, both ways ----------------------------------------------------------

LOCAL_PARTS = st.sampled_from(
    [
        *["jan", "J.de.Vries", "a+b", "o'brien", "_", "!#$%&'*+/=?^`{|}~-", "x" * 70],
        *["jörg", "zoë", "ß", "用户", "\u212a", ".a", "a.", "a..b", "a b", "", "@"],
        *['"a b"', '"a\\ b"', '"q"'],
    ]
)
DOMAINS = st.sampled_from(
    [
        *["example.com", "exämple.de", "EXÄMPLE.DE", "例え.テスト", "пример.рф", "xn--p1ai.nl"],
        *["localhost", "LocalHost", "voorbeeld", "b.local", "example.com.", "-x.nl", "x-.nl"],
        *["a..nl", "example.123", "example.-co", "\U0001f600.com", "example\u3002com", "e.c"],
        *["[127.0.0.1]", "[::1]", "[1.2.3.256]", "[IPv6:::1]", "exa mple.nl", "\ufffd.de", ""],
        *["ä" * 60 + ".de", "a" * 63 + ".nl", "a" * 64 + ".nl", ".".join(["a" * 63] * 4) + ".nl"],
    ]
)
PIECES = st.sampled_from(["a", "ä", ".", "@", "-", '"', "\\", "[", "]", ":", "1", " ", "K"])

ADDRESSES = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", LOCAL_PARTS, DOMAINS),
    st.lists(PIECES, min_size=1, max_size=12).map("".join),
    st.builds(lambda n: "x" * n + "@example.com", st.integers(300, 315)),
    st.text(min_size=1, max_size=30),
)


# Mapping a frame costs far more than an upsert, so each example maps several addresses.
@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[tuple[SandboxServer, SandboxHttp]]:
    """One server for all examples; each example resets it first."""
    with SandboxServer() as server:
        yield server, SandboxHttp(server.url)


_REFS = itertools.count(1)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(ADDRESSES, min_size=1, max_size=8, unique_by=lambda a: a.strip().lower().casefold())
)
def test_what_the_mapping_accepts_the_sandbox_accepts_and_the_rest_is_rejected_with_place(
    shared_sandbox: tuple[SandboxServer, SandboxHttp], addresses: list[str]
) -> None:
    assume(all(a.strip() for a in addresses))
    server, http = shared_sandbox
    server.control.reset()
    refs = [str(next(_REFS)) for _ in addresses]
    frame = pd.DataFrame(
        {
            "id": pd.Series(refs, dtype=object),
            "naam": pd.Series([f"Medewerker {r}" for r in refs], dtype=object),
            "mail": pd.Series(addresses, dtype=object),
            "_file": pd.Series(["hr/hr.csv"] * len(refs), dtype=object),
            "_line": pd.Series(range(2, len(refs) + 2), dtype="int64"),
        }
    )
    desired = merge([map_source("hr", frame, mapping(), today=TODAY)])
    rejected = rejection_rows(desired)
    assert set(desired.users.index) | set(rejected) == set(refs)

    for line, (ref, raw) in enumerate(zip(refs, addresses, strict=True), start=2):
        sent = raw.strip().lower()  # the canonical form the engine sends
        if ref in desired.users.index:
            assert desired.users.loc[ref, "email"] == sent
            body = upsert(http, ref, sent)
            assert "errors" not in body, (sent, body)
            assert body["data"]["updateOrCreateUser"]["user"]["email"] == sent
        else:
            row = rejected[ref]
            assert (row["file"], row["line"], row["column"]) == ("hr/hr.csv", line, "mail")
            assert row["reason"].startswith(f"invalid email '{sent}': "), row["reason"]
            assert len(row["reason"]) > len(f"invalid email '{sent}': ")
            body = upsert(http, ref, sent)
            assert refused_for_email(body), (sent, body)
