"""Adoption: recognise users Pluvo already has before creating anyone.

Most organisations start with users made by hand or by an earlier integration. Before
the plan creates a user, its ref and then (if configured) its email are looked up in
Pluvo. A match by ref, or by email on a user without a ref, is adopted: the engine
takes it over (records it as `adopted`) and updates it instead of creating a
duplicate. An email that belongs to a Pluvo user with *another* ref is ambiguous and
the row is rejected with that reason: guessing would merge two people.

Only reads are sent here; the adoption itself is an ordinary upsert in the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sync.core.plan import Kind, Operation, Plan
from sync.model import ERROR, REJECTION_COLUMNS, Desired
from sync.pluvo import ops as calls

LOOKUP_SELECTION = "id ref email archived isActive"


@dataclass(frozen=True)
class Match:
    ref: str
    how: str  # "ref" | "email"
    pluvo_id: str
    pluvo_ref: str | None
    archived: bool


@dataclass
class Adoption:
    matches: dict[str, Match]
    ambiguous: dict[str, str]  # ref -> reason


async def look_up(client: Any, people: Sequence[tuple[str, str]], match: Sequence[str]) -> Adoption:
    """Find Pluvo users for (ref, email) pairs the plan would create."""
    result = Adoption({}, {})
    if not people:
        return result
    by_ref: dict[str, dict[str, Any]] = {}
    by_email: dict[str, dict[str, Any]] = {}
    lookups: list[tuple[str, str, str]] = []  # (kind, key, ref)
    if "ref" in match:
        lookups += [("ref", ref, ref) for ref, _ in people]
    if "email" in match:
        lookups += [("email", email, ref) for ref, email in people if email]
    queries = [
        calls.get_user(selection=LOOKUP_SELECTION, **{kind: key}) for kind, key, _ in lookups
    ]
    answers = await client.run_calls(queries)
    for (kind, key, _), answer in zip(lookups, answers, strict=True):
        if answer.error is not None:
            raise answer.error
        if answer.data:
            (by_ref if kind == "ref" else by_email)[key] = answer.data
    for ref, email in people:
        found = by_ref.get(ref)
        if found is not None:
            result.matches[ref] = _match(ref, "ref", found)
            continue
        found = by_email.get(email) if email else None
        if found is None:
            continue
        other = found.get("ref")
        if other and other != ref:
            result.ambiguous[ref] = (
                f"email {email} already belongs to Pluvo user with ref '{other}'; "
                "not adopted (fix the ref or the email in the HR system or in Pluvo)"
            )
        else:
            result.matches[ref] = _match(ref, "email", found)
    return result


def _match(ref: str, how: str, user: dict[str, Any]) -> Match:
    return Match(ref, how, str(user["id"]), user.get("ref"), bool(user.get("archived")))


def reject_ambiguous(desired: Desired, ambiguous: dict[str, str]) -> None:
    """Move ambiguous users out of the desired state, into the rejections."""
    if not ambiguous:
        return
    users = desired.users
    rows = []
    for ref, reason in sorted(ambiguous.items()):
        row = users.loc[ref]
        rows.append(
            {
                "source": row.get("_source", ""),
                "file": row.get("_file", ""),
                "line": row.get("_line", 0),
                "column": "email",
                "ref": ref,
                "severity": ERROR,
                "reason": reason,
            }
        )
    desired.rejections = pd.concat(
        [desired.rejections, pd.DataFrame(rows, columns=list(REJECTION_COLUMNS))],
        ignore_index=True,
    )
    refs = set(ambiguous)
    desired.users = users[~users.index.isin(refs)]
    for name in ("extra_values", "memberships", "managers"):
        frame = getattr(desired, name)
        setattr(desired, name, frame[~frame["user_ref"].isin(refs)])


def adopt_in_plan(plan: Plan, matches: dict[str, Match]) -> None:
    """Turn the creations of matched users into adoptions (an upsert that takes over)."""
    if not matches:
        return
    operations: list[Operation] = []
    for op in plan.operations:
        match = matches.get(op.ref) if op.kind is Kind.CREATE_USER else None
        if match is None:
            operations.append(op)
            continue
        send = dict(op.data["send"])
        if match.archived:
            send["archived"] = "false"
        operations.append(
            Operation(
                Kind.ADOPT_USER,
                op.ref,
                f"adopt existing Pluvo user {op.ref} (matched by {match.how})",
                op.changes,
                {
                    **op.data,
                    "send": send,
                    "match": match.how,
                    "match_email": op.data["fields"]["email"] if match.how == "email" else None,
                    "pluvo_id": match.pluvo_id,
                },
            )
        )
        plan.adopted.append(op.ref)
    plan.operations = operations
