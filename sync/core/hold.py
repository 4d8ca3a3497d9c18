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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sync.core.guards import GUARD_HOLDS, Tripped
from sync.core.plan import (
    HeldOp,
    Operation,
    Plan,
    RiskClass,
    only_parts,
    per_person,
    risk_class,
)
from sync.state.held import ASKED_OTHERWISE, NO_LONGER_ASKED, HoldKey


@dataclass(frozen=True)
class Standing:
    """A change held by an earlier run: why, and since when (ISO)."""

    reason: str
    since: str


@dataclass(frozen=True)
class Discarded:
    """A change someone discarded: who and why (in words), since when (ISO), and the
    change as it was when discarded."""

    reason: str
    since: str
    operation: Mapping[str, Any]


def hold(
    plan: Plan,
    classes: Mapping[RiskClass, str],
    standing: Mapping[HoldKey, Standing],
    discarded: Mapping[HoldKey, Discarded] | None = None,
    same: Callable[[Operation, Mapping[str, Any]], bool] | None = None,
) -> Plan:
    """The plan with every operation of `classes` (class → why) and every part of one
    held before (`standing`) moved from `operations` to `held`; and a part someone
    discarded (`discarded`) set aside while it is the `same` change as the one they
    declined. A different change for that person is planned like any other."""
    keep: list[Operation] = []
    held = list(plan.held)
    declined = list(plan.discarded)
    for op in plan.operations:
        risk = risk_class(op)
        if risk is None:
            keep.append(op)
            continue
        rest: set[HoldKey] = set()
        for key, part in per_person(op):
            before = standing.get(key)
            gone = (discarded or {}).get(key)
            if gone is not None and same is not None and same(part, gone.operation):
                declined.append(HeldOp(part, risk, gone.reason, gone.since))
            elif before is not None:
                held.append(HeldOp(part, risk, before.reason, before.since))
            elif risk in classes:
                held.append(HeldOp(part, risk, classes[risk]))
            else:
                rest.add(key)
        remaining = only_parts(op, rest)
        if remaining is not None:
            keep.append(remaining)
    return replace(plan, operations=tuple(keep), held=tuple(held), discarded=tuple(declined))


def lapsed(plan: Plan, discarded: Mapping[HoldKey, int]) -> dict[int, str]:
    """The standing discards (key → id) that this plan no longer sets aside, each with
    why: the sources ask for a different change for that person, or no longer ask."""
    if not discarded:
        return {}  # every applying run asks: no pass over a million operations for none
    kept = {item.key for item in plan.discarded}
    asked = {
        key
        for op in (*plan.operations, *(h.operation for h in plan.held))
        if risk_class(op) is not None
        for key, _ in per_person(op)
    }
    return {
        row: ASKED_OTHERWISE if key in asked else NO_LONGER_ASKED
        for key, row in discarded.items()
        if key not in kept
    }


def always_held(classes: list[RiskClass]) -> dict[RiskClass, str]:
    return {risk: f"safety.hold lists {risk}" for risk in classes}


def held_by_guards(tripped: list[Tripped]) -> dict[RiskClass, str]:
    """The classes the tripped guards are about, each with the first guard's reason."""
    out: dict[RiskClass, str] = {}
    for trip in tripped:
        for risk in GUARD_HOLDS[trip.guard]:
            out.setdefault(risk, f"safety guard '{trip.guard}': {trip.message}")
    return out
