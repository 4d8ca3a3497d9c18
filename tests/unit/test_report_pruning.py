"""report.keep_days: old reports go, and only the files the tool itself wrote."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sync.commands.reports import DAY, prune_reports

OURS = [
    "run-20240101T020000-a1b2c3.json",
    "reconcile-20240101T020000-a1b2c3.json",
    "rejected-20240101T020000-a1b2c3.csv",
    "run-20240101T020000-a1b2c3.html",
]
NOT_OURS = [
    "notes.txt",
    "run-latest.json",  # not a run id
    "rejected-20240101T020000-a1b2c3.csv.bak",
    "plan.json",
    "run-20240101T020000-a1b2c3.json.gz",
]


def _touch(folder: Path, name: str, age_days: float, now: float) -> Path:
    path = folder / name
    path.write_text("{}", encoding="utf-8")
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_only_the_tool_s_own_old_files_are_deleted(tmp_path: Path) -> None:
    now = time.time()
    old = [_touch(tmp_path, name, 91, now) for name in OURS]
    recent = _touch(tmp_path, "run-20240301T020000-ffffff.json", 89, now)
    foreign = [_touch(tmp_path, name, 400, now) for name in NOT_OURS]
    (tmp_path / "run-20230101T020000-000000.json").mkdir()  # a folder by that name stays

    removed = prune_reports(tmp_path, 90, now=now)

    assert sorted(removed) == sorted(old)
    assert not any(p.exists() for p in old)
    assert recent.exists()
    assert all(p.exists() for p in foreign)
    assert (tmp_path / "run-20230101T020000-000000.json").is_dir()


def test_empty_keep_days_keeps_everything(tmp_path: Path) -> None:
    now = time.time()
    path = _touch(tmp_path, OURS[0], 5000, now)
    assert prune_reports(tmp_path, None, now=now) == []
    assert path.exists()


def test_a_symlink_is_never_followed_or_deleted(tmp_path: Path) -> None:
    now = time.time()
    target = _touch(tmp_path, "precious.json", 1000, now)
    link = tmp_path / OURS[0]
    link.symlink_to(target)
    os.utime(link, (now - 1000 * DAY, now - 1000 * DAY), follow_symlinks=False)
    prune_reports(tmp_path, 1, now=now)
    assert link.is_symlink()
    assert target.exists()


def test_a_missing_folder_or_an_undeletable_file_never_fails_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert prune_reports(tmp_path / "missing", 90) == []
    if os.geteuid() == 0:
        return  # root deletes from a read-only folder all the same
    now = time.time()
    path = _touch(tmp_path, OURS[0], 100, now)
    tmp_path.chmod(0o500)
    try:
        assert prune_reports(tmp_path, 90, now=now) == []
    finally:
        tmp_path.chmod(0o700)
    assert path.exists()
    assert "not deleted" in caplog.text
