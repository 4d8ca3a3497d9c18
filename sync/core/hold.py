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
    HeldOp,
    Operation,
    Plan,
    RiskClass,
    only_parts,
    per_person,
    risk_class,
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
        rest: set[HoldKey] = set()
        for key, part in per_person(op):
            before = standing.get(key)
            if before is not None:
                held.append(HeldOp(part, risk, before.reason, before.since))
            elif risk in classes:
                held.append(HeldOp(part, risk, classes[risk]))
            else:
                rest.add(key)
        remaining = only_parts(op, rest)
        if remaining is not None:
            keep.append(remaining)
    return replace(plan, operations=tuple(keep), held=tuple(held))


def always_held(classes: list[RiskClass]) -> dict[RiskClass, str]:
    return {risk: f"safety.hold lists {risk}" for risk in classes}


def held_by_guards(tripped: list[Tripped]) -> dict[RiskClass, str]:
    """The classes the tripped guards are about, each with the first guard's reason."""
    out: dict[RiskClass, str] = {}
    for trip in tripped:
        for risk in GUARD_HOLDS[trip.guard]:
            out.setdefault(risk, f"safety guard '{trip.guard}': {trip.message}")
    return out
