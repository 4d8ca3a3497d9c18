"""User-facing text is reviewed like code: plan and report output against snapshots.

To accept an intended change, run with UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sync.commands.render import render_plan, render_report
from sync.core.executor import Execution, Failure
from sync.core.plan import (
    AddMembers,
    ArchiveUser,
    Change,
    CreateGroup,
    CreateUser,
    ExtraValue,
    Plan,
    SetExtraValues,
    UpdateUser,
    UserFields,
)
from sync.core.report import Report
from sync.model import REJECTION_COLUMNS, USER_FIELDS, Desired
from sync.state.journal import ErrorClass

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8")


def sample_report() -> Report:
    origin = "hr/hr.csv:12"
    fields = UserFields("thijs@example.nl", "Thijs Meijer", "NL", "MANAGER,TRAINER", "true")
    plan = Plan(
        operations=(
            CreateGroup(ref="dept-ict", changes=(Change("name", "", "ICT"),), name="ICT"),
            CreateUser(
                ref="1007",
                changes=tuple(Change(f, "", v, origin) for f, v in fields.as_dict().items()),
                fields=fields,
                send=USER_FIELDS,
            ),
            UpdateUser(
                ref="1002",
                changes=(Change("email", "daan@old.nl", "daan@new.nl", "hr/hr.csv:3"),),
                fields=UserFields("daan@new.nl", "Daan", "NL", "PARTICIPANT", "true"),
                send=("email",),
            ),
            SetExtraValues(
                ref="1002",
                changes=(Change("skills", "Excel", "Excel\nSQL", "hr/hr.csv:3"),),
                values=(ExtraValue("skills", "multiselect", "Excel\nSQL"),),
            ),
            AddMembers(ref="dept-ict", users=("1002", "1007")),
            ArchiveUser(
                ref="1040",
                changes=(Change("archived", "false", "true"),),
                reason="gone from the sources",
            ),
        ),
        state_users=40,
        desired_users=41,
    )
    desired = Desired()
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
            "hr": {"rows": 45, "filtered": 2, "rejected": 1, "users": 41, "pending": 1,
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
