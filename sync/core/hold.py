"""Holding: apply the safe part of a plan and hold the risky part for release.

A guard that trips stops the whole run by default (`safety.on_exceed: stop`). With
`hold`, only the classes of change the guard is about are held (`GUARD_HOLDS`), and
`safety.hold` lists classes that are always held. A change once held stays held,
run after run, until it is released or discarded, or the sources stop asking for it:
each run re-plans it from its own data, so what a release applies is never stale.
Held changes are per person (a group's removals are cut into one per member), since
people are what a reviewer releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sync.core.guards import GUARD_HOLDS, Tripped
from sync.core.plan import (
    GroupLinks,
    HeldOp,
    Operation,
    Plan,
    RiskClass,
    per_person,
    risk_class,
    with_users,
)
from sync.state.held import HoldKey


@dataclass(frozen=True)
class Standing:
    """A change held by an earlier run: why, and since when (ISO)."""

    reason: str
    since: str


def hold(
    plan: Plan, classes: Mapping[RiskClass, str], standing: Mapping[HoldKey, Standing]
) -> Plan:
    """The plan with every operation of `classes` (class → why) and every part of one
    held before (`standing`) moved from `operations` to `held`."""
    keep: list[Operation] = []
    held = list(plan.held)
    for op in plan.operations:
        risk = risk_class(op)
        if risk is None:
            keep.append(op)
            continue
        rest: list[Operation] = []
        parts = per_person(op)
        for key, part in parts:
            before = standing.get(key)
            if before is not None:
                held.append(HeldOp(part, risk, before.reason, before.since))
            elif risk in classes:
                held.append(HeldOp(part, risk, classes[risk]))
            else:
                rest.append(part)
        if len(rest) == len(parts):
            keep.append(op)
        elif rest:
            keep.append(_joined(op, rest))
    return replace(plan, operations=tuple(keep), held=tuple(held))


def _joined(op: Operation, parts: list[Operation]) -> Operation:
    """Parts of one group-links operation back in one (the others were held)."""
    assert isinstance(op, GroupLinks)
    return with_users(op, tuple(user for part in parts for user in getattr(part, "users", ())))


def always_held(classes: list[RiskClass]) -> dict[RiskClass, str]:
    return {risk: f"safety.hold lists {risk}" for risk in classes}


def held_by_guards(tripped: list[Tripped]) -> dict[RiskClass, str]:
    """The classes the tripped guards are about, each with the first guard's reason."""
    out: dict[RiskClass, str] = {}
    for trip in tripped:
        for risk in GUARD_HOLDS[trip.guard]:
            out.setdefault(risk, f"safety guard '{trip.guard}': {trip.message}")
    return out
