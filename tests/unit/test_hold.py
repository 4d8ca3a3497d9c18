"""Holding: which operations a policy holds, per person, and how holds are recorded.

Plans come from the diff (what the sources say against what the store holds); the
store cases run against a migrated SQLite store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sync.config import LeaverConfig
from sync.core.guards import GUARD_HOLDS, GUARDS, Tripped
from sync.core.hold import Standing, always_held, held_by_guards, hold
from sync.core.plan import (
    AddMembers,
    ArchiveUser,
    Change,
    CreateUser,
    ExtraValue,
    HeldOp,
    Kind,
    Plan,
    RemoveManagers,
    RemoveMembers,
    RestoreUser,
    SetExtraValues,
    UpdateUser,
    UserFields,
    per_person,
    risk_class,
)
from sync.core.release import released_part
from sync.state import held as held_store
from sync.state.held import HeldStatus, Holding
from sync.state.models import HeldRow
from sync.state.store import StateStore
from tests.support.diffing import desired_state, people, plan_for, state_view

FIELDS = UserFields("a@example.com", "A", "NL", "PARTICIPANT", "true")


def _kinds(ops: tuple[object, ...]) -> list[str]:
    return [str(op.kind) for op in ops]  # type: ignore[attr-defined]


def _day2() -> Plan:
    """E000 leaves, E001 moves G1 → G2 and is renamed, E004 joins."""
    before = people("E000", "E001", "E002", "E003", groups=("G1",))
    after = [
        before[1].but(name="Renamed", groups=("G2",)),
        before[2],
        before[3],
        *people("E004", groups=("G1",)),
    ]
    return plan_for(
        desired_state(*after), state_view(*before), LeaverConfig(action="archive", grace_runs=0)
    )


# ------------------------------------------------------------------ classes


@pytest.mark.parametrize(
    ("op", "risk"),
    [
        (ArchiveUser(ref="u"), "leavers"),
        (RemoveMembers(ref="g", users=("u",)), "removals"),
        (RemoveManagers(ref="g", users=("u",)), "removals"),
        (UpdateUser(ref="u", fields=FIELDS, send=("name",)), "overwrites"),
        (RestoreUser(ref="u", fields=FIELDS, send=("name",)), "overwrites"),
        (
            SetExtraValues(
                ref="u",
                values=(ExtraValue("c", "string", "new"),),
                changes=(Change("c", "old", "new"),),
            ),
            "overwrites",
        ),
        (
            SetExtraValues(
                ref="u",
                values=(ExtraValue("c", "string", "new"),),
                changes=(Change("c", "", "new"),),
            ),
            None,
        ),
        (CreateUser(ref="u", fields=FIELDS, send=("name",)), None),
        (AddMembers(ref="g", users=("u",)), None),
    ],
)
def test_risk_classes(op: object, risk: str | None) -> None:
    assert risk_class(op) == risk  # type: ignore[arg-type]


def test_every_guard_holds_a_class() -> None:
    assert set(GUARD_HOLDS) == set(GUARDS)
    assert held_by_guards([Tripped("changes", "9 users")]) == {
        "overwrites": "safety guard 'changes': 9 users"
    }
    shrink = held_by_guards([Tripped("source-shrink", "half"), Tripped("leavers", "many")])
    assert shrink == {
        "leavers": "safety guard 'source-shrink': half",
        "removals": "safety guard 'source-shrink': half",
    }


# ------------------------------------------------------------------ hold


def test_holding_leavers_keeps_every_other_operation() -> None:
    plan = _day2()
    held = hold(plan, always_held(["leavers"]), {})
    assert [(h.operation.kind, h.key, h.reason, h.since) for h in held.held] == [
        (Kind.ARCHIVE_USER, ("leaver", "E000", ""), "safety.hold lists leavers", "")
    ]
    assert Kind.ARCHIVE_USER not in _kinds(held.operations)
    assert list(held.operations) == [op for op in plan.operations if op.kind != Kind.ARCHIVE_USER]
    assert (held.state_users, held.desired_users) == (plan.state_users, plan.desired_users)


def test_held_removals_are_cut_per_person() -> None:
    plan = Plan(operations=(RemoveMembers(ref="G1", users=("E001", "E002", "E003")),))
    held = hold(plan, always_held(["removals"]), {})
    assert held.operations == ()
    assert [h.key for h in held.held] == [
        ("remove_members", "E001", "G1"),
        ("remove_members", "E002", "G1"),
        ("remove_members", "E003", "G1"),
    ]
    assert all(len(h.operation.users) == 1 for h in held.held)  # type: ignore[attr-defined]


def test_a_standing_hold_keeps_its_reason_and_date_and_the_rest_applies() -> None:
    plan = Plan(
        operations=(
            RemoveMembers(ref="G1", users=("E001", "E002", "E003"), group_name="Sales"),
            ArchiveUser(ref="E009", reason="gone from the sources"),
        )
    )
    standing = {("remove_members", "E002", "G1"): Standing("safety guard 'x': y", "2026-11-01")}
    held = hold(plan, {}, standing)
    assert held.operations == (
        RemoveMembers(ref="G1", users=("E001", "E003"), group_name="Sales"),
        ArchiveUser(ref="E009", reason="gone from the sources"),
    )
    (only,) = held.held
    assert only == HeldOp(
        RemoveMembers(ref="G1", users=("E002",), group_name="Sales"),
        "removals",
        "safety guard 'x': y",
        "2026-11-01",
    )


def test_standing_holds_win_over_the_class_reason() -> None:
    plan = Plan(operations=(ArchiveUser(ref="E1"), ArchiveUser(ref="E2")))
    standing = {("leaver", "E1", ""): Standing("first", "2026-11-01")}
    held = hold(plan, {"leavers": "now"}, standing)
    assert [(h.key[1], h.reason, h.since) for h in held.held] == [
        ("E1", "first", "2026-11-01"),
        ("E2", "now", ""),
    ]


def test_safe_operations_are_never_held() -> None:
    safe = Plan(
        operations=(
            CreateUser(ref="E1", fields=FIELDS, send=("name",)),
            AddMembers(ref="G1", users=("E1",)),
        )
    )
    standing = {(str(op.kind), "E1", ""): Standing("r", "s") for op in safe.operations}
    held = hold(safe, always_held(["leavers", "removals", "overwrites"]), standing)
    assert held == safe


def test_hold_adds_to_what_is_held_already() -> None:
    first = hold(Plan(operations=(ArchiveUser(ref="E1"),)), {"leavers": "a"}, {})
    second = hold(
        Plan(
            operations=(*first.operations, UpdateUser(ref="E2", fields=FIELDS, send=())),
            held=first.held,
        ),
        {"overwrites": "b"},
        {},
    )
    assert [h.key[1] for h in second.held] == ["E1", "E2"]


def test_held_operations_survive_the_plan_file_round_trip() -> None:
    plan = hold(_day2(), always_held(["leavers", "removals", "overwrites"]), {})
    assert plan.held
    assert Plan.from_json(plan.to_json()) == plan


def test_a_plan_file_with_an_unknown_hold_class_is_refused() -> None:
    data = hold(_day2(), always_held(["leavers"]), {}).to_json()
    data["held"][0]["class"] = "joiners"
    with pytest.raises(ValueError, match="joiners"):
        Plan.from_json(data)


# ------------------------------------------------------------------ release


def test_a_release_takes_only_the_released_parts_in_execution_order() -> None:
    plan = Plan(
        operations=(
            UpdateUser(ref="E1", fields=FIELDS, send=("name",)),
            RemoveMembers(ref="G1", users=("E1", "E2", "E3")),
            RemoveMembers(ref="G2", users=("E1",)),
            ArchiveUser(ref="E3"),
            ArchiveUser(ref="E4"),
        )
    )
    keys = {
        ("leaver", "E3", ""),
        ("remove_members", "E3", "G1"),
        ("remove_members", "E1", "G1"),
        ("update_user", "E1", ""),
    }
    picked = released_part(plan, keys)
    assert picked.operations == (
        UpdateUser(ref="E1", fields=FIELDS, send=("name",)),
        RemoveMembers(ref="G1", users=("E1", "E3")),
        ArchiveUser(ref="E3"),
    )
    assert {key for op in picked.operations for key, _ in per_person(op)} == keys
    assert released_part(plan, set()).operations == ()


def test_a_release_keeps_the_plans_bearings() -> None:
    """What the executor and the report know of the plan it came from."""
    plan = Plan(
        operations=(ArchiveUser(ref="E3"),),
        state_users=40,
        desired_users=38,
        verified_new=frozenset({"N1"}),
    )
    picked = released_part(plan, {("leaver", "E3", "")})
    assert (picked.state_users, picked.desired_users, picked.verified_new) == (
        40,
        38,
        frozenset({"N1"}),
    )


# ------------------------------------------------------------------ the store


def _holding(ref: str, reason: str = "r", risk: str = "leavers") -> Holding:
    op = ArchiveUser(ref=ref, reason=reason)
    return Holding(("leaver", ref, ""), risk, reason, op.to_json())


def test_settle_adds_replans_and_drops(store: StateStore) -> None:
    day1 = datetime(2026, 11, 1, tzinfo=UTC)
    with store.session() as session, session.begin():
        assert held_store.settle(session, "run1", [_holding("E1"), _holding("E2")], day1) == 0
    with store.session() as session, session.begin():
        dropped = held_store.settle(
            session, "run2", [_holding("E2", reason="other"), _holding("E3")], day1 + timedelta(1)
        )
    assert dropped == 1
    with store.session() as session:
        now = {h.ref: h for h in held_store.active(session)}
        assert set(now) == {"E2", "E3"}
        e2 = now["E2"]
        # Re-planned: the operation is this run's, the reason and date the first run's.
        assert (e2.reason, e2.held_by_run, e2.planned_by_run) == ("r", "run1", "run2")
        assert e2.operation["reason"] == "other"
        assert e2.held_at.replace(tzinfo=UTC) == day1
        assert now["E3"].held_by_run == "run2"
        assert [h.ref for h in held_store.active(session, {"E3", "E9"})] == ["E3"]
        from sqlalchemy import select

        from sync.state.models import HeldRow

        (gone,) = session.scalars(select(HeldRow).where(HeldRow.ref == "E1")).all()
        assert (gone.status, gone.closed_by_run, gone.close_reason) == (
            "dropped",
            "run2",
            held_store.NO_LONGER_ASKED,
        )


def test_close_ends_only_what_is_held(store: StateStore) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with store.session() as session, session.begin():
        held_store.settle(session, "run1", [_holding("E1"), _holding("E2")], at)
    with store.session() as session, session.begin():
        ids = [h.id for h in held_store.active(session)]
        closed = held_store.close(
            session, ids[:1], HeldStatus.RELEASED, run_id="rel", by="hr", reason="ok", at=at
        )
        assert closed == 1
        from sqlalchemy import select

        from sync.state.models import HeldRow

        row = session.scalars(select(HeldRow).where(HeldRow.id == ids[0])).one()
        assert (row.status, row.closed_by, row.close_reason, row.closed_by_run) == (
            "released",
            "hr",
            "ok",
            "rel",
        )
        assert row.closed_at is not None
        assert row.closed_at.replace(tzinfo=UTC) == at
        again = held_store.close(
            session, ids[:1], HeldStatus.DISCARDED, run_id="x", by="y", reason="z", at=at
        )
        assert again == 0
        assert (
            held_store.close(
                session, [], HeldStatus.DISCARDED, run_id="x", by=None, reason="", at=at
            )
            == 0
        )
    with store.session() as session:
        assert [h.ref for h in held_store.active(session)] == ["E2"]


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def test_a_dropped_hold_is_closed_when_the_run_dropped_it(store: StateStore) -> None:
    """`held --all` shows when a hold ended; one the sources stopped asking for ended
    with the run that settled it, not when it was first held (or never)."""
    day1 = datetime(2026, 11, 1, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    with store.session() as session, session.begin():
        held_store.settle(session, "run1", [_holding("E1"), _holding("E2")], day1)
    with store.session() as session, session.begin():
        assert held_store.settle(session, "run2", [_holding("E2")], day2) == 1

    with store.session() as session:
        (gone,) = session.scalars(select(HeldRow).where(HeldRow.ref == "E1")).all()
        assert gone.status == HeldStatus.DROPPED
        assert _utc(gone.closed_at) == day2
        (kept,) = session.scalars(select(HeldRow).where(HeldRow.ref == "E2")).all()
        assert (kept.status, kept.closed_at) == (HeldStatus.HELD, None)


def _finished_run(
    store: StateStore, run_id: str, status: str, rows: int, summary: dict[str, object]
) -> None:
    store.start_run(run_id, "run")
    store.finish_run(run_id, status=status, exit_code=0, summary=summary, source_rows={"hr": rows})


def test_source_history_skips_runs_whose_guards_held_changes(store: StateStore) -> None:
    """A truncated export held night after night must not become the norm."""
    _finished_run(store, "r1", "succeeded", 100, {})
    _finished_run(store, "r2", "held", 50, {"held": 50, "holding": ["safety guard 'x'"]})
    _finished_run(store, "r3", "held", 98, {"held": 1})  # only safety.hold held: counts
    _finished_run(store, "r4", "guarded", 10, {})
    _finished_run(store, "r5", "partial", 97, {})
    assert store.source_history(5) == {"hr": [100, 98, 97]}
    assert store.source_history(2) == {"hr": [98, 97]}


def test_a_held_run_changes_the_store_for_saved_plans(store: StateStore) -> None:
    _finished_run(store, "r1", "succeeded", 100, {})
    _finished_run(store, "r2", "held", 100, {"held": 1})
    last = store.last_applied_run()
    assert last is not None
    assert last[0] == "r2"


def test_a_held_member_carries_only_its_own_change() -> None:
    """The journal and the held table name only the people a part concerns."""
    op = RemoveMembers(ref="G1", users=("E1", "E2"))
    assert op.changes == (Change("member", "E1", ""), Change("member", "E2", ""))
    parts = [part for _, part in per_person(op)]
    assert [p.changes for p in parts] == [
        (Change("member", "E1", ""),),
        (Change("member", "E2", ""),),
    ]
    kept = hold(Plan(operations=(op,)), {}, {("remove_members", "E1", "G1"): Standing("r", "")})
    assert kept.operations[0].changes == (Change("member", "E2", ""),)


def test_a_discarded_change_is_set_aside_while_asked_for_unchanged() -> None:
    """The same change someone discarded is neither held nor applied; a different one
    for the same person is planned like any other; and the discards this plan no longer
    sets aside lapse, each with why."""
    from sync.core.hold import Discarded, lapsed

    plan = _day2()
    leaver = next(op for op in plan.operations if op.kind == Kind.ARCHIVE_USER)
    update = next(op for op in plan.operations if op.kind == Kind.UPDATE_USER)
    other = UpdateUser(ref=update.ref, fields=FIELDS, send=("name",))
    discarded = {
        ("leaver", leaver.ref, ""): Discarded(
            "discarded by hr: still here", "2026-12-01", leaver.to_json()
        ),
        (str(Kind.UPDATE_USER), update.ref, ""): Discarded("discarded by hr", "", other.to_json()),
        ("leaver", "E999", ""): Discarded("discarded by hr", "", leaver.to_json()),
    }

    def same(part: object, stored: object) -> bool:
        return part.to_json() == stored  # type: ignore[attr-defined]

    kept = hold(plan, {}, {}, discarded, same)
    assert [h.key for h in kept.discarded] == [("leaver", leaver.ref, "")]
    assert kept.discarded[0].reason == "discarded by hr: still here"
    assert leaver not in kept.operations
    assert update in kept.operations  # asked for differently: planned afresh
    assert kept.held == ()
    ids = {key: n for n, key in enumerate(discarded)}
    assert lapsed(kept, ids) == {
        1: held_store.ASKED_OTHERWISE,
        2: held_store.NO_LONGER_ASKED,
    }
