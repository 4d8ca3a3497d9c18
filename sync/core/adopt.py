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

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from sync.core.plan import AdoptUser, CreateUser, MatchedBy, Operation, Plan
from sync.model import ERROR, REJECTION_COLUMNS, Desired
from sync.pluvo import ops as calls
from sync.pluvo.api import PluvoApi

LOOKUP_SELECTION = "id ref email archived isActive"


@dataclass(frozen=True)
class Match:
    ref: str
    how: MatchedBy
    pluvo_id: str
    pluvo_ref: str | None
    archived: bool


@dataclass(frozen=True)
class PluvoUser:
    """What matching needs of a user Pluvo already has."""

    pluvo_id: str
    ref: str | None
    archived: bool


@dataclass
class Adoption:
    matches: dict[str, Match]
    ambiguous: dict[str, str]  # ref -> reason


def match_people(
    people: Sequence[tuple[str, str]],
    by_ref: Mapping[str, PluvoUser],
    by_email: Mapping[str, PluvoUser],
    match: Collection[str],
) -> Adoption:
    """The one matching rule, whatever the Pluvo users were read from.

    For each (ref, email) the plan would create: a Pluvo user with that ref is adopted
    by ref; else one with that email and no ref (or ours) is adopted by email; an
    email held by a user with another ref is ambiguous and the row is rejected,
    never merged.
    """
    result = Adoption({}, {})
    for ref, email in people:
        found = by_ref.get(ref) if "ref" in match else None
        if found is not None:
            result.matches[ref] = Match(ref, "ref", found.pluvo_id, found.ref, found.archived)
            continue
        found = by_email.get(email) if email and "email" in match else None
        if found is None:
            continue
        if found.ref and found.ref != ref:
            result.ambiguous[ref] = (
                f"email {email} already belongs to Pluvo user with ref '{found.ref}'; "
                "not adopted (fix the ref or the email in the HR system or in Pluvo)"
            )
        else:
            result.matches[ref] = Match(ref, "email", found.pluvo_id, found.ref, found.archived)
    return result


def creations(plan: Plan) -> list[tuple[str, str]]:
    """(ref, email) of every user the plan would create."""
    return [(op.ref, op.fields.email) for op in plan if isinstance(op, CreateUser)]


async def look_up(
    api: PluvoApi, people: Sequence[tuple[str, str]], match: Collection[str]
) -> Adoption:
    """Find Pluvo users for (ref, email) pairs the plan would create, one read each."""
    if not people:
        return Adoption({}, {})
    lookups: list[tuple[str, str]] = []  # (by, key)
    if "ref" in match:
        lookups += [("ref", ref) for ref, _ in people]
    if "email" in match:
        lookups += [("email", email) for _, email in people if email]
    queries = [calls.get_user(selection=LOOKUP_SELECTION, **{by: key}) for by, key in lookups]
    answers = await api.run_calls(queries)
    by_ref: dict[str, PluvoUser] = {}
    by_email: dict[str, PluvoUser] = {}
    for (by, key), answer in zip(lookups, answers, strict=True):
        if answer.error is not None:
            raise answer.error
        if answer.data:
            user = PluvoUser(
                str(answer.data["id"]), answer.data.get("ref"), bool(answer.data.get("archived"))
            )
            (by_ref if by == "ref" else by_email)[key] = user
    return match_people(people, by_ref, by_email, match)


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


def adopt_in_plan(plan: Plan, matches: Mapping[str, Match]) -> Plan:
    """A new plan whose creations of matched users are adoptions (an upsert that takes
    over the Pluvo user instead of creating a duplicate)."""
    if not matches:
        return plan
    operations: list[Operation] = []
    adopted: list[str] = []
    for op in plan.operations:
        match = matches.get(op.ref) if isinstance(op, CreateUser) else None
        if match is None or not isinstance(op, CreateUser):
            operations.append(op)
            continue
        operations.append(
            AdoptUser(
                ref=op.ref,
                changes=op.changes,
                fields=op.fields,
                send=op.send,
                matched_by=match.how,
                pluvo_id=match.pluvo_id,
                unarchive=match.archived,
            )
        )
        adopted.append(op.ref)
    return replace(plan, operations=tuple(operations), adopted=(*plan.adopted, *adopted))
