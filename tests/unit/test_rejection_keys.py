"""Which rejections count as the same one the next night (`sync.model.rejection_key`)."""

from __future__ import annotations

import pandas as pd

from sync.model import REJECTION_COLUMNS, rejection_key, rejection_keys


def rejection(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "source": "hr",
        "file": "hr.csv",
        "line": 12,
        "column": "E-mailadres",
        "ref": "1001",
        "severity": "error",
        "reason": "invalid email 'x'",
    }
    row.update(changes)
    return row


def test_a_row_that_moved_is_the_same_rejection() -> None:
    assert rejection_key(rejection(line=12)) == rejection_key(rejection(line=40))
    moved = "duplicate ref '1001' (also used on line(s) 3, 17)"
    assert rejection_key(rejection(reason=moved)) == rejection_key(
        rejection(reason="duplicate ref '1001' (also used on line(s) 5)")
    )


def test_another_person_column_source_or_reason_is_another_rejection() -> None:
    key = rejection_key(rejection())
    for changed in (
        {"ref": "1002"},
        {"column": "Taal"},
        {"source": "contractors"},
        {"reason": "invalid email 'y'"},
    ):
        assert rejection_key(rejection(**changed)) != key, changed


def test_warnings_are_not_rejections() -> None:
    frame = pd.DataFrame(
        [rejection(), rejection(ref="1002", severity="warning")], columns=list(REJECTION_COLUMNS)
    )
    assert rejection_keys(frame) == [rejection_key(rejection())]
    assert rejection_keys(frame.iloc[0:0]) == []
