"""Held changes in the state store: what the safety policy holds, until released.

A held change is keyed per person (`HoldKey`: kind, person ref, group ref). At most
one is `held` per key at a time; every applying run settles them against its plan
(`settle`): still asked for, it is re-planned in place (its reason and date kept);
no longer asked for, it is `dropped`. `release` and `discard` end them by hand, with
who and why. A discard then stands: runs set the same change aside until the sources
stop asking for it or ask for another (`end_discards`), or someone releases it. All
of it runs under the run lock, which is what keeps one per key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.state.models import HeldRow

HoldKey = tuple[str, str, str]


class HeldStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    DISCARDED = "discarded"
    DROPPED = "dropped"
    """The sources no longer ask for the change (or its basis changed beyond it)."""


NO_LONGER_ASKED = "the sources no longer ask for this change"


@dataclass(frozen=True)
class Held:
    """One held change as stored, for listing and for the next plan."""

    id: int
    key: HoldKey
    risk: str
    reason: str
    operation: dict[str, Any]
    held_at: datetime
    held_by_run: str
    planned_by_run: str
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    """Who discarded it, when and why (for a standing discard)."""

    @property
    def ref(self) -> str:
        return self.key[1]


@dataclass(frozen=True)
class Holding:
    """What a run holds, as `settle` records it."""

    key: HoldKey
    risk: str
    reason: str
    operation: dict[str, Any]


def _held(row: HeldRow) -> Held:
    return Held(
        id=row.id,
        key=(row.kind, row.ref, row.group_ref),
        risk=row.risk,
        reason=row.reason,
        operation=dict(row.operation),
        held_at=row.held_at,
        held_by_run=row.held_by_run,
        planned_by_run=row.planned_by_run,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        close_reason=row.close_reason,
    )


def active(session: Session, refs: Collection[str] | None = None) -> list[Held]:
    """The changes held now (of `refs` only, when given), oldest first."""
    query = select(HeldRow).where(HeldRow.status == HeldStatus.HELD)
    if refs is not None:
        query = query.where(HeldRow.ref.in_(list(refs)))
    rows = session.scalars(query.order_by(HeldRow.held_at, HeldRow.id)).all()
    return [_held(row) for row in rows]


def standing_discards(session: Session, refs: Collection[str] | None = None) -> list[Held]:
    """Discards that still stand (of `refs` only, when given), oldest first: a person's
    change someone declined, not applied while the sources keep asking for it."""
    query = select(HeldRow).where(
        HeldRow.status == HeldStatus.DISCARDED, HeldRow.ended_at.is_(None)
    )
    if refs is not None:
        query = query.where(HeldRow.ref.in_(list(refs)))
    rows = session.scalars(query.order_by(HeldRow.closed_at, HeldRow.id)).all()
    return [_held(row) for row in rows]


ASKED_OTHERWISE = "the sources ask for a different change"


def end_discards(session: Session, ends: dict[int, str], *, run_id: str, at: datetime) -> int:
    """These standing discards (id → why) no longer stand; who discarded them, and
    why, stay recorded beside it."""
    if not ends:
        return 0
    rows = session.scalars(
        select(HeldRow).where(
            HeldRow.id.in_(list(ends)),
            HeldRow.status == HeldStatus.DISCARDED,
            HeldRow.ended_at.is_(None),
        )
    ).all()
    for row in rows:
        row.ended_at, row.ended_by_run, row.end_reason = at, run_id, ends[row.id]
    return len(rows)


def settle(session: Session, run_id: str, holdings: Iterable[Holding], at: datetime) -> int:
    """Record what a run holds: new holds added, standing ones re-planned (reason and
    date kept), and standing ones this run no longer holds dropped. Returns how many
    were dropped."""
    standing = _standing(session)
    for holding in holdings:
        row = standing.pop(holding.key, None)
        if row is not None:
            row.operation = holding.operation
            row.planned_by_run = run_id
            continue
        kind, ref, group = holding.key
        session.add(
            HeldRow(
                kind=kind,
                ref=ref,
                group_ref=group,
                risk=holding.risk,
                reason=holding.reason,
                operation=holding.operation,
                status=HeldStatus.HELD,
                held_at=at,
                held_by_run=run_id,
                planned_by_run=run_id,
            )
        )
    for row in standing.values():
        _close(row, HeldStatus.DROPPED, run_id=run_id, by=None, reason=NO_LONGER_ASKED, at=at)
    return len(standing)


def replan(session: Session, run_id: str, operations: dict[HoldKey, dict[str, Any]]) -> None:
    """Held changes given their content as planned now (still held, reason and date
    kept): what `held` lists next is what a release would apply."""
    if not operations:
        return
    for key, row in _standing(session).items():
        if key in operations:
            row.operation = operations[key]
            row.planned_by_run = run_id


def _standing(session: Session) -> dict[HoldKey, HeldRow]:
    """The rows of the changes held now, by key (at most one each: see module doc)."""
    rows = session.scalars(select(HeldRow).where(HeldRow.status == HeldStatus.HELD))
    return {(row.kind, row.ref, row.group_ref): row for row in rows}


def close(
    session: Session,
    ids: Collection[int],
    status: HeldStatus,
    *,
    run_id: str,
    by: str | None,
    reason: str,
    at: datetime,
) -> int:
    """End the held changes `ids` (released, discarded or dropped), with who and why."""
    if not ids:
        return 0
    rows = session.scalars(
        select(HeldRow).where(HeldRow.id.in_(list(ids)), HeldRow.status == HeldStatus.HELD)
    ).all()
    for row in rows:
        _close(row, status, run_id=run_id, by=by, reason=reason, at=at)
    return len(rows)


def _close(
    row: HeldRow, status: HeldStatus, *, run_id: str, by: str | None, reason: str, at: datetime
) -> None:
    row.status = status
    row.closed_at = at
    row.closed_by_run = run_id
    row.closed_by = by
    row.close_reason = reason
