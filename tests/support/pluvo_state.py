"""Reading the sandbox's side of a sync: what Pluvo holds, what it was sent, its faults.

Shared by the end-to-end, reliability and integration tests, which all judge a run by
what arrived in Pluvo (through the sandbox's control API, never the engine's client).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sync.sandbox import Faults, SandboxServer


def mutations(sandbox: SandboxServer) -> int:
    """Mutations executed since the counters were last reset (faulted requests run none)."""
    return int(sandbox.control.counters()["mutations_total"])


def users_by_ref(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    """Pluvo's users by ref, after asserting that no ref or email exists twice."""
    users = sandbox.control.state()["users"]
    refs = Counter(u["ref"] for u in users)
    emails = Counter((u["email"] or "").lower() for u in users)
    duplicate_refs = sorted(r for r, c in refs.items() if c > 1)
    duplicate_emails = sorted(e for e, c in emails.items() if c > 1)
    assert not duplicate_refs, f"duplicate refs in Pluvo: {duplicate_refs[:10]}"
    assert not duplicate_emails, f"duplicate emails in Pluvo: {duplicate_emails[:10]}"
    return {u["ref"]: u for u in users}


def members(sandbox: SandboxServer, group_ref: str) -> set[str]:
    """Refs of the members of a group that must exist."""
    group = sandbox.control.group(group_ref)
    assert group is not None, f"no group {group_ref} in Pluvo"
    return set(group["members"])


def expected_name(row: dict[str, str]) -> str:
    """The Pluvo name the bundled mapping makes of an HR row."""
    return " ".join(p for p in (row["Voornaam"], row["Tussenvoegsel"], row["Achternaam"]) if p)


def assert_pluvo_matches(sandbox: SandboxServer, rows: list[dict[str, str]]) -> None:
    """Each row's person is in Pluvo, active, with its email, name and job title."""
    users = users_by_ref(sandbox)
    missing = [row["Personeelsnummer"] for row in rows if row["Personeelsnummer"] not in users]
    assert not missing, f"{len(missing)} user(s) missing in Pluvo, e.g. {missing[:10]}"
    for row in rows:
        user = users[row["Personeelsnummer"]]
        assert user["email"] == row["E-mailadres"].lower(), user
        assert user["name"] == expected_name(row), user
        assert user["archived"] is False, user
        assert user["extra"]["job_title"] == row["Functie"], user


def heal(sandbox: SandboxServer) -> None:
    """Every fault back to none: a healthy Pluvo from the next request on."""
    sandbox.control.set_faults(**Faults().to_dict())
