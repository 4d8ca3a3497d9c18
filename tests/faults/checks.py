"""What "converged" means for the reliability suite, checked from both sides.

A fault scenario passes only when Pluvo holds exactly the expected users and
memberships (no duplicate, nothing missing, nothing stale), the state store
describes that same Pluvo (ids, fields, ownership, memberships), no run is left
`running`, and one more run sends no mutation at all. Checking only one side would
miss the dangerous case: a store that believes something Pluvo never acknowledged.
"""

from __future__ import annotations

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import expected_name, heal, mutations, users_by_ref
from tests.support.workspace import Workspace


def assert_pluvo_is(sandbox: SandboxServer, rows: list[dict[str, str]]) -> None:
    """Pluvo holds exactly these people, with their fields, values and groups."""
    users = users_by_ref(sandbox)
    expected = {row["Personeelsnummer"]: row for row in rows}
    assert set(users) == set(expected), (
        f"missing in Pluvo: {sorted(set(expected) - set(users))[:10]}, "
        f"unexpected: {sorted(set(users) - set(expected))[:10]}"
    )
    wrong = [
        ref
        for ref, row in expected.items()
        if users[ref]["email"] != row["E-mailadres"].lower()
        or users[ref]["name"] != expected_name(row)
        or users[ref]["archived"] is not False
        or users[ref]["extra"].get("job_title") != row["Functie"]
        or users[ref]["extra"].get("department") != row["Afdeling"]
    ]
    assert not wrong, f"{len(wrong)} user(s) wrong in Pluvo, e.g. {users[wrong[0]]}"
    groups = {g["ref"]: set(g["members"]) for g in sandbox.control.state()["groups"]}
    for row in rows:
        ref = row["Personeelsnummer"]
        dept = "dept-" + row["Afdeling"].lower().replace("ë", "e")
        assert ref in groups.get(dept, set()), f"{ref} missing from {dept}"
        assert ref in groups["all-staff"], f"{ref} missing from all-staff"


def assert_store_matches_pluvo(sandbox: SandboxServer, ws: Workspace) -> None:
    """Every user and membership the store records is in Pluvo exactly so, and vice versa."""
    users = users_by_ref(sandbox)
    stored = {
        ref: (pluvo_id, email, name, bool(archived))
        for ref, pluvo_id, email, name, archived in ws.query(
            "SELECT ref, pluvo_id, email, name, archived FROM users"
        )
    }
    assert set(stored) == set(users), (
        f"store only: {sorted(set(stored) - set(users))[:10]}, "
        f"Pluvo only: {sorted(set(users) - set(stored))[:10]}"
    )
    drift = [
        ref
        for ref, (pluvo_id, email, name, archived) in stored.items()
        if (pluvo_id, email, name, archived)
        != (users[ref]["id"], users[ref]["email"], users[ref]["name"], users[ref]["archived"])
    ]
    assert not drift, f"{len(drift)} stored user(s) differ from Pluvo, e.g. {drift[:5]}"
    pluvo_pairs = {
        (g["ref"], member) for g in sandbox.control.state()["groups"] for member in g["members"]
    }
    stored_pairs = set(ws.query("SELECT group_ref, user_ref FROM memberships"))
    assert stored_pairs == pluvo_pairs, (
        f"store only: {sorted(stored_pairs - pluvo_pairs)[:5]}, "
        f"Pluvo only: {sorted(pluvo_pairs - stored_pairs)[:5]}"
    )
    stored_groups = dict(ws.query("SELECT ref, pluvo_id FROM groups"))
    pluvo_groups = {g["ref"]: g["id"] for g in sandbox.control.state()["groups"]}
    assert stored_groups == pluvo_groups


def assert_store_within_pluvo(sandbox: SandboxServer, ws: Workspace) -> None:
    """After a crash the store may lag Pluvo, never lead it."""
    users = users_by_ref(sandbox)
    for ref, pluvo_id, email in ws.query("SELECT ref, pluvo_id, email FROM users"):
        assert ref in users, f"store records {ref}, which Pluvo does not have"
        assert (users[ref]["id"], users[ref]["email"]) == (pluvo_id, email), ref
    pairs = {(g["ref"], m) for g in sandbox.control.state()["groups"] for m in g["members"]}
    stored = set(ws.query("SELECT group_ref, user_ref FROM memberships"))
    assert stored <= pairs, f"store records memberships Pluvo lacks: {sorted(stored - pairs)[:5]}"


def assert_converged(sandbox: SandboxServer, ws: Workspace, rows: list[dict[str, str]]) -> None:
    """Exact Pluvo state, a store that agrees, no open run, and a next run that sends nothing."""
    assert_pluvo_is(sandbox, rows)
    assert_store_matches_pluvo(sandbox, ws)
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    assert ws.query("SELECT count(*) FROM lock") == [(0,)], "a finished run left its lock"
    heal(sandbox)
    sandbox.control.reset_counters()
    again = ws.cli("run")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert mutations(sandbox) == 0, "a converged store must plan nothing"
