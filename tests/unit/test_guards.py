"""Safety guards as a table: which plan trips which guard, at which bound, and what it says.

A truncated HR export looks like a mass termination and a garbled one like a mass
rename; the guards stop both before anything is applied. Each case isolates one
guard (the others are switched off) unless it is about their interplay. Plans come
from the diff itself, so a case is "what the sources say" against "what the store
holds", never hand-made operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from sync.config import LeaverConfig, Limit, SafetyConfig
from sync.core.guards import check
from sync.core.plan import Kind
from tests.support.diffing import Person, Stored, desired_state, people, plan_for, state_view

STAFF = 20


def staff(n: int = STAFF) -> list[Person]:
    return people(*(f"E{i:03d}" for i in range(n)))


def steady(of: int = STAFF) -> Any:
    """Nothing changes."""
    everyone = staff(of)
    return plan_for(desired_state(*everyone), state_view(*everyone))


def leaving(k: int, of: int = STAFF, action: str = "archive") -> Any:
    """k of `of` stored users are gone from the sources (no grace)."""
    everyone = staff(of)
    return plan_for(
        desired_state(*everyone[k:]),
        state_view(*everyone),
        LeaverConfig(action=action, grace_runs=0),
    )


def renamed(k: int, of: int = STAFF) -> Any:
    """k users get a new name: UPDATE_USER."""
    everyone = staff(of)
    wanted = [p.but(name=f"Renamed {p.ref}") if i < k else p for i, p in enumerate(everyone)]
    return plan_for(desired_state(*wanted), state_view(*everyone))


def values(k: int, old: str, new: str, of: int = STAFF) -> Any:
    """k users' job title goes from `old` to `new` ("" = no value): SET_VALUES."""
    everyone = staff(of)

    def job(p: Person, value: str) -> Person:
        return p.but(extras={"job_title": value} if value else {})

    stored = [job(p, old) if i < k else p for i, p in enumerate(everyone)]
    wanted = [job(p, new) if i < k else p for i, p in enumerate(everyone)]
    return plan_for(desired_state(*wanted), state_view(*stored))


def renamed_and_retitled(k: int, of: int = STAFF) -> Any:
    """k users change both name and an existing value: two operations, one user each."""
    everyone = staff(of)
    stored = [p.but(extras={"job_title": "Clerk"}) if i < k else p for i, p in enumerate(everyone)]
    wanted = [
        p.but(name=f"Renamed {p.ref}", extras={"job_title": "Head"}) if i < k else p
        for i, p in enumerate(everyone)
    ]
    return plan_for(desired_state(*wanted), state_view(*stored))


def restored(k: int, of: int = STAFF) -> Any:
    """k archived users come back: RESTORE_USER."""
    everyone = staff(of)
    back = people(*(f"R{i:03d}" for i in range(k)))
    archived = [Stored(p, left_action="archive") for p in back]
    return plan_for(desired_state(*everyone, *back), state_view(*everyone, *archived))


def joiners(k: int, of: int = STAFF) -> Any:
    """k new users: CREATE_USER (with a value and a group each)."""
    everyone = staff(of)
    new = [
        Person(f"N{i:03d}", groups=("sales",), extras={"job_title": "Trainee"}) for i in range(k)
    ]
    return plan_for(desired_state(*everyone, *new), state_view(*everyone))


def initial_load(k: int) -> Any:
    """An empty store: everything is new."""
    return plan_for(desired_state(*staff(k)), state_view())


def mixed() -> Any:
    """3 of 20 leave and 3 others are renamed."""
    everyone = staff()
    wanted = [p.but(name=f"Renamed {p.ref}") if i < 3 else p for i, p in enumerate(everyone)]
    return plan_for(desired_state(*wanted[:-3]), state_view(*everyone))


SCENARIOS: dict[str, tuple[Callable[[], Any], dict[Kind, int]]] = {
    "leaving": (partial(leaving, 3), {Kind.ARCHIVE_USER: 3}),
    "leaving-deactivate": (partial(leaving, 3, action="deactivate"), {Kind.DEACTIVATE_USER: 3}),
    "renamed": (partial(renamed, 3), {Kind.UPDATE_USER: 3}),
    "values-overwritten": (partial(values, 3, "Clerk", "Head"), {Kind.SET_VALUES: 3}),
    "values-cleared": (partial(values, 3, "Clerk", ""), {Kind.SET_VALUES: 3}),
    "values-filled": (partial(values, 15, "", "Head"), {Kind.SET_VALUES: 15}),
    "restored": (partial(restored, 3), {Kind.RESTORE_USER: 3}),
    "joiners": (
        partial(joiners, 30),
        {Kind.CREATE_GROUP: 1, Kind.CREATE_USER: 30, Kind.SET_VALUES: 30, Kind.ADD_MEMBERS: 1},
    ),
    "renamed-and-retitled": (
        partial(renamed_and_retitled, 2),
        {Kind.UPDATE_USER: 2, Kind.SET_VALUES: 2},
    ),
    "mixed": (mixed, {Kind.UPDATE_USER: 3, Kind.ARCHIVE_USER: 3}),
    "steady": (steady, {}),
}


@pytest.mark.parametrize(("plan", "kinds"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenarios_plan_what_they_say(plan: Callable[[], Any], kinds: dict[Kind, int]) -> None:
    """The table below means something only if its plans hold what their names say."""
    counted: dict[Kind, int] = {}
    for op in plan().operations:
        counted[op.kind] = counted.get(op.kind, 0) + 1
    assert counted == kinds


QUIET: dict[str, Any] = {
    "max_leavers": Limit(),
    "max_changes": Limit(),
    "min_source_ratio": None,
    "allow_empty_source": False,
}
"""Every guard off (an empty source still trips): each case turns on what it tests."""


@dataclass(frozen=True)
class Case:
    plan: Callable[[], Any]
    safety: dict[str, Any]
    tripped: tuple[str, ...]
    source_rows: dict[str, int] = field(default_factory=lambda: {"hr": STAFF})
    history: dict[str, list[int]] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()


def leavers_limit(**bound: Any) -> dict[str, Any]:
    return {"max_leavers": Limit(**bound)}


def changes_limit(**bound: Any) -> dict[str, Any]:
    return {"max_changes": Limit(**bound)}


HUNDREDS = {"hr": [100, 100, 100]}

CASES: dict[str, Case] = {
    # -- leavers: count and share, at and one over the bound
    "leavers-count-at-bound": Case(partial(leaving, 2), leavers_limit(count=2), ()),
    "leavers-count-over": Case(partial(leaving, 3), leavers_limit(count=2), ("leavers",)),
    "leavers-share-at-bound": Case(partial(leaving, 2), leavers_limit(share=0.1), ()),
    "leavers-share-over": Case(partial(leaving, 3), leavers_limit(share=0.1), ("leavers",)),
    "leavers-share-over-count-within": Case(
        partial(leaving, 3), leavers_limit(share=0.1, count=50), ("leavers",)
    ),
    "leavers-count-over-share-within": Case(
        partial(leaving, 3), leavers_limit(share=0.5, count=2), ("leavers",)
    ),
    "leavers-deactivations-count": Case(
        partial(leaving, 3, action="deactivate"), leavers_limit(count=2), ("leavers",)
    ),
    "leavers-none-planned-zero-bound": Case(steady, leavers_limit(share=0.0, count=0), ()),
    "leavers-are-not-changes": Case(partial(leaving, 3), changes_limit(count=0), ()),
    # -- changes: only overwrites count
    "changes-count-at-bound": Case(partial(renamed, 2), changes_limit(count=2), ()),
    "changes-count-over": Case(partial(renamed, 3), changes_limit(count=2), ("changes",)),
    "changes-share-at-bound": Case(partial(renamed, 10), changes_limit(share=0.5), ()),
    "changes-share-over": Case(partial(renamed, 11), changes_limit(share=0.5), ("changes",)),
    "changes-overwritten-values": Case(
        partial(values, 3, "Clerk", "Head"), changes_limit(count=2), ("changes",)
    ),
    "changes-cleared-values": Case(
        partial(values, 3, "Clerk", ""), changes_limit(count=2), ("changes",)
    ),
    "changes-never-set-values-filled": Case(
        partial(values, 15, "", "Head"), changes_limit(share=0.1, count=2), ()
    ),
    "changes-restores": Case(partial(restored, 3), changes_limit(count=2), ("changes",)),
    "changes-joiners": Case(partial(joiners, 30), changes_limit(share=0.1, count=2), ()),
    "changes-initial-load": Case(partial(initial_load, 20), changes_limit(share=0.0, count=0), ()),
    "changes-one-user-counts-once": Case(
        partial(renamed_and_retitled, 2), changes_limit(count=2), ()
    ),
    "changes-of-a-one-person-organisation": Case(
        partial(renamed, 1, of=1), changes_limit(share=0.5), ("changes",)
    ),
    # -- source-shrink: against the median of the last successful runs
    "shrink-at-bound": Case(
        steady, {"min_source_ratio": 0.8}, (), source_rows={"hr": 80}, history=HUNDREDS
    ),
    "shrink-under": Case(
        steady,
        {"min_source_ratio": 0.8},
        ("source-shrink",),
        source_rows={"hr": 79},
        history=HUNDREDS,
    ),
    "shrink-median-not-mean": Case(
        steady,
        {"min_source_ratio": 0.8},
        (),
        source_rows={"hr": 85},
        history={"hr": [100, 10_000, 90]},
    ),
    "shrink-median-of-last-runs": Case(
        steady,
        {"min_source_ratio": 0.8, "source_history_runs": 2},
        (),
        source_rows={"hr": 85},
        history={"hr": [1000, 1000, 1000, 100, 100]},
    ),
    "shrink-median-of-all-runs": Case(
        steady,
        {"min_source_ratio": 0.8, "source_history_runs": 5},
        ("source-shrink",),
        source_rows={"hr": 85},
        history={"hr": [1000, 1000, 1000, 100, 100]},
    ),
    "shrink-first-run-no-history": Case(
        steady, {"min_source_ratio": 0.8}, (), source_rows={"hr": 1}
    ),
    "shrink-off": Case(steady, {}, (), source_rows={"hr": 1}, history=HUNDREDS),
    "shrink-per-source": Case(
        steady,
        {"min_source_ratio": 0.8},
        ("source-shrink",),
        source_rows={"hr": 100, "contractors": 5},
        history={"hr": [100, 100], "contractors": [10, 10]},
    ),
    # -- empty source
    "empty-refused": Case(steady, {}, ("empty-source",), source_rows={"hr": 0}),
    "empty-refused-not-also-shrink": Case(
        steady,
        {"min_source_ratio": 0.8},
        ("empty-source",),
        source_rows={"hr": 0},
        history=HUNDREDS,
    ),
    "empty-allowed": Case(steady, {"allow_empty_source": True}, (), source_rows={"hr": 0}),
    "empty-allowed-not-a-shrink": Case(
        steady,
        {"allow_empty_source": True, "min_source_ratio": 0.8},
        (),
        source_rows={"hr": 0},
        history=HUNDREDS,
    ),
    # -- overrides
    "override-one-guard": Case(
        mixed,
        {**leavers_limit(count=2), **changes_limit(count=2)},
        ("changes",),
        overrides=("leavers",),
    ),
    "override-other-guard": Case(
        mixed,
        {**leavers_limit(count=2), **changes_limit(count=2)},
        ("leavers",),
        overrides=("changes",),
    ),
    "override-both-by-name": Case(
        mixed,
        {**leavers_limit(count=2), **changes_limit(count=2)},
        (),
        overrides=("leavers", "changes"),
    ),
    "override-all": Case(
        mixed,
        {**leavers_limit(count=2), **changes_limit(count=2), "min_source_ratio": 0.8},
        (),
        source_rows={"hr": 0, "contractors": 1},
        history={"contractors": [100]},
        overrides=("all",),
    ),
    "override-untripped-guard": Case(
        partial(leaving, 3), leavers_limit(count=2), ("leavers",), overrides=("changes",)
    ),
    "override-empty-source": Case(
        steady, {}, (), source_rows={"hr": 0}, overrides=("empty-source",)
    ),
}


def tripped(case: Case) -> list[Any]:
    safety = SafetyConfig(**{**QUIET, **case.safety})
    return check(
        case.plan(),
        safety,
        source_rows=case.source_rows,
        history=case.history,
        overrides=case.overrides,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_guard_table(case: Case) -> None:
    assert tuple(t.guard for t in tripped(case)) == case.tripped


HINT = (
    "if this is intended, rerun with --override {0} "
    "(or raise the bound under `safety:` in the config)"
)

MESSAGES: dict[str, tuple[Case, str]] = {
    "leavers-count": (
        CASES["leavers-count-over"],
        "safety guard 'leavers': 3 exceeds the maximum of 2 leavers (archive/deactivate) "
        "planned; " + HINT.format("leavers"),
    ),
    "leavers-share": (
        CASES["leavers-share-over"],
        "safety guard 'leavers': 3 of 20 (15.0%) exceeds the maximum share 10% leavers "
        "(archive/deactivate) planned; " + HINT.format("leavers"),
    ),
    "changes-count": (
        CASES["changes-count-over"],
        "safety guard 'changes': 3 exceeds the maximum of 2 users would change; "
        + HINT.format("changes"),
    ),
    "changes-share": (
        CASES["changes-share-over"],
        "safety guard 'changes': 11 of 20 (55.0%) exceeds the maximum share 50% users would "
        "change; " + HINT.format("changes"),
    ),
    "source-shrink": (
        CASES["shrink-under"],
        "safety guard 'source-shrink': source 'hr' has 79 rows, 79% of the median 100 of the "
        "last 3 successful run(s) (minimum 80%); " + HINT.format("source-shrink"),
    ),
    "empty-source": (
        CASES["empty-refused"],
        "safety guard 'empty-source': source 'hr' has no data rows; " + HINT.format("empty-source"),
    ),
}


@pytest.mark.parametrize(("case", "message"), MESSAGES.values(), ids=MESSAGES.keys())
def test_guard_message(case: Case, message: str) -> None:
    (trip,) = tripped(case)
    assert str(trip) == message


@pytest.mark.parametrize(
    ("allow_empty", "expected"),
    [(True, ["source-shrink"]), (False, ["empty-source", "source-shrink"])],
    ids=["empty-allowed", "empty-refused"],
)
def test_an_empty_source_does_not_hide_a_shrunk_one_after_it(
    allow_empty: bool, expected: list[str]
) -> None:
    """Every source is checked: an empty first source (allowed or not) must not end
    the check before a truncated second source is caught."""
    everyone = people("E1", "E2")
    plan = plan_for(desired_state(*everyone), state_view(*everyone))
    safety = SafetyConfig(
        max_leavers=Limit(),
        max_changes=Limit(),
        min_source_ratio=0.8,
        allow_empty_source=allow_empty,
    )

    trips = check(
        plan,
        safety,
        source_rows={"hr": 0, "contractors": 5},
        history={"hr": [100, 100], "contractors": [10, 10]},
    )

    assert [t.guard for t in trips] == expected
    assert "source 'contractors' has 5 rows" in trips[-1].message
