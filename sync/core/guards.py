"""Safety guards: stop before applying anything when a plan looks like a disaster.

A truncated HR export looks exactly like a mass termination. Each guard compares the
plan (or the sources) with the configured bounds and, when exceeded, says which
guard, the numbers, and how to override it for one run.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sync.config import Limit, SafetyConfig
from sync.core.plan import LEAVER_KINDS, Plan, RiskClass, overwrites

GUARDS = ("leavers", "changes", "source-shrink", "empty-source")

GUARD_HOLDS: dict[str, tuple[RiskClass, ...]] = {
    "leavers": ("leavers",),
    "changes": ("overwrites",),
    # A shrunk or empty source makes people look gone: they would leave, and leave
    # their groups. What it says of the people still in it is as good as ever.
    "source-shrink": ("leavers", "removals"),
    "empty-source": ("leavers", "removals"),
}
"""With `safety.on_exceed: hold`, the classes of change a tripped guard holds."""


@dataclass(frozen=True)
class Tripped:
    guard: str
    message: str

    def __str__(self) -> str:
        return (
            f"safety guard '{self.guard}': {self.message}; if this is intended, rerun with "
            f"--override {self.guard} (or raise the bound under `safety:` in the config)"
        )

    def held(self) -> str:
        """Said of a guard that held its changes instead of stopping the run."""
        return (
            f"safety guard '{self.guard}': {self.message}; its changes are held: "
            f"`pluvo-sync held` lists them, `pluvo-sync release` applies them"
        )


def _exceeds(limit: Limit, count: int, base: int) -> str | None:
    if limit.count is not None and count > limit.count:
        return f"{count} exceeds the maximum of {limit.count}"
    if limit.share is not None and base > 0 and count / base > limit.share:
        return f"{count} of {base} ({count / base:.1%}) exceeds the maximum share {limit.share:.0%}"
    return None


def check(
    plan: Plan,
    safety: SafetyConfig,
    *,
    source_rows: Mapping[str, int],
    history: Mapping[str, Sequence[int]],
    overrides: Collection[str] = (),
) -> list[Tripped]:
    """Every guard the plan trips, minus the overridden ones."""
    tripped: list[Tripped] = []
    base = max(plan.state_users, 1)
    leavers = sum(1 for op in plan.operations if op.kind in LEAVER_KINDS)
    reason = _exceeds(safety.max_leavers, leavers, plan.state_users)
    if reason:
        tripped.append(Tripped("leavers", f"{reason} leavers (archive/deactivate) planned"))
    changed_users = len({op.ref for op in plan.operations if overwrites(op)})
    if plan.state_users > 0:
        reason = _exceeds(safety.max_changes, changed_users, base)
        if reason:
            tripped.append(Tripped("changes", f"{reason} users would change"))
    for name, rows in source_rows.items():
        if rows == 0:
            # An empty source is the empty-source guard's case alone: allowing it must
            # not be undone by the shrink guard (any history makes 0 rows a shrink).
            if not safety.allow_empty_source:
                tripped.append(Tripped("empty-source", f"source '{name}' has no data rows"))
            continue
        past = list(history.get(name, ()))[-safety.source_history_runs :]
        if safety.min_source_ratio is not None and past:
            typical = statistics.median(past)
            if typical > 0 and rows / typical < safety.min_source_ratio:
                tripped.append(
                    Tripped(
                        "source-shrink",
                        f"source '{name}' has {rows} rows, {rows / typical:.0%} of the median "
                        f"{typical:g} of the last {len(past)} successful run(s) "
                        f"(minimum {safety.min_source_ratio:.0%})",
                    )
                )
    allowed = set(overrides)
    if "all" in allowed:
        return []
    return [t for t in tripped if t.guard not in allowed]
