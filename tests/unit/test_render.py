"""User-facing text is reviewed like code: plan and report output against snapshots.

To accept an intended change, run with UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sync.commands.render import render_plan, render_report
from sync.core.executor import Execution, Failure
from sync.core.report import Report
from sync.model import REJECTION_COLUMNS, Desired, StateView
from sync.state.journal import ErrorClass
from tests.support.diffing import Person, desired_state, plan_for, state_view

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8")


def sample_report() -> Report:
    """A day-2 plan as the diff makes it: a new department and a joiner in it, an email
    change, a changed skill, a move, a leaver."""
    anouk = Person("1001", name="Anouk de Vries", groups=("dept-hr",), manages=("dept-hr",))
    daan = Person("1002", name="Daan Jansen", groups=("dept-hr",), extras={"skills": "Excel"})
    gone = Person("1040", name="Sanne Bakker", groups=("dept-hr",))
    state = state_view(anouk, daan, gone)
    joiner = Person("1007", name="Thijs Meijer", roles="MANAGER,TRAINER", groups=("dept-ict",))
    moved = daan.but(
        email="daan.jansen@example.nl", groups=("dept-ict",), extras={"skills": "Excel\nSQL"}
    )
    desired = desired_state(anouk, moved, joiner)
    plan = plan_for(desired, state)
    desired.rejections = pd.DataFrame(
        [
            [
                "hr",
                "hr/hr.csv",
                27,
                "E-mailadres",
                "1026",
                "error",
                "invalid email 'gijs@voorbeeld'",
            ],
            [
                "hr",
                "hr/hr.csv",
                31,
                "Leidinggevende",
                "1030",
                "warning",
                "manager '999' is not a synced user; manager link to group 'dept-ict' dropped "
                "(the user still syncs)",
            ],
        ],
        columns=list(REJECTION_COLUMNS),
    )
    return Report(
        run_id="20261124T060000-abcdef",
        mode="plan",
        started_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
        plan=plan,
        desired=desired,
        mapping={
            "hr": {"rows": 4, "filtered": 0, "rejected": 1, "users": 3, "pending": 0,
                   "ended": 0},
        },
    )  # fmt: skip


def test_plan_text() -> None:
    check("plan.txt", render_plan(sample_report()))


def test_guarded_plan_text() -> None:
    report = sample_report()
    report.guards = [
        "safety guard 'leavers': 12 of 40 (30.0%) exceeds the maximum share 5% leavers "
        "(archive/deactivate) planned; if this is intended, rerun with --override leavers "
        "(or raise the bound under `safety:` in the config)"
    ]
    check("plan_guarded.txt", render_plan(report))


def test_report_text() -> None:
    report = sample_report()
    report.mode, report.status, report.exit_code = "run", "partial", 3
    report.execution = Execution(
        done={"create_group": 1, "create_user": 1, "update_user": 1},
        failed=[
            Failure(
                4,
                "add_members",
                "dept-ict",
                "1 of 2 user(s) refused by Pluvo: 1007",
                ErrorClass.PARTIAL,
            )
        ],
        requests=4,
        seconds=0.42,
    )
    check("report.txt", render_report(report))


def plan_report(desired: Desired, state: StateView) -> Report:
    """A dry run's report of the plan from `state` to `desired`."""
    return Report(
        run_id="20261124T060000-abcdef",
        mode="plan",
        started_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
        plan=plan_for(desired, state),
        desired=desired,
    )


def test_a_group_that_loses_one_and_gains_one_keeps_what_it_had_less_the_loss() -> None:
    """HR has Anouk and Daan; Daan moves to ICT and Thijs joins HR. HR keeps 1 (Anouk)
    and has 2 after (Anouk, Thijs): the two lines must not contradict each other."""
    anouk = Person("1001", name="Anouk de Vries", groups=("dept-hr",))
    daan = Person("1002", name="Daan Jansen", groups=("dept-hr",))
    state = state_view(anouk, daan)
    joiner = Person("1007", name="Thijs Meijer", groups=("dept-hr",))
    text = render_plan(
        plan_report(desired_state(anouk, daan.but(groups=("dept-ict",)), joiner), state)
    )
    assert "group Group dept-hr: loses 1 member, keeps 1" in text, text
    assert "group Group dept-hr: gains 1 member, has 2 after" in text, text


def test_a_joiner_and_a_move_are_each_one_entry() -> None:
    """A new person's first values are part of their "joins" entry (not a second entry,
    not counted as changed profile fields); a department value that names the group
    they move between is said in the move, not again as a value overwritten."""
    daan = Person(
        "1002", name="Daan Jansen", groups=("dept-hr",), extras={"department": "Group dept-hr"}
    )
    state = state_view(daan)
    moved = daan.but(groups=("dept-ict",), extras={"department": "Group dept-ict"})
    joiner = Person(
        "1007", name="Thijs Meijer", groups=("dept-ict",), extras={"department": "Group dept-ict"}
    )
    text = render_plan(plan_report(desired_state(moved, joiner), state))
    assert text.count("Thijs Meijer <1007@example.com> (1007)") == 1, text
    assert "      department: 'Group dept-ict'" in text, text
    # Daan's value does change (one operation); Thijs's first values are not a change.
    assert re.search(r"^  person's profile fields changed +1$", text, re.MULTILINE), text
    assert re.search(r"^  new person's profile fields set +1$", text, re.MULTILINE), text
    assert "Existing values overwritten" not in text, text
    assert re.search(
        r"Group dept-hr → Group dept-ict\n      department: 'Group dept-hr' → 'Group dept-ict'",
        text,
    ), text


def test_values_read_as_hr_writes_them() -> None:
    from sync.commands.review import build_review
    from sync.core.plan import Change, ExtraValue, Plan, SetExtraValues

    op = SetExtraValues(
        ref="1002",
        values=(
            ExtraValue("is_remote", "boolean", "true"),
            ExtraValue("start_date", "datetime", "2024-05-01T00:00:00+00:00"),
            ExtraValue("shift", "datetime", "2024-05-01T08:30:00+02:00"),
        ),
        changes=(
            Change("is_remote", "false", "true"),
            Change("start_date", "2024-04-01T00:00:00+00:00", "2024-05-01T00:00:00+00:00"),
            Change("shift", "", "2024-05-01T08:30:00+02:00"),
        ),
    )
    review = build_review(Plan(operations=(op,)))
    texts = [i.text for s in review.sections for i in s.items]
    assert "is_remote: no → yes" in texts
    assert "start_date: '2024-04-01' → '2024-05-01'" in texts
    assert "shift '2024-05-01T08:30:00+02:00'" in texts  # a time of day is kept
