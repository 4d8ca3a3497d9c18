"""The demo's own config runs after the demo: with its sandbox served again from the
data the demo saved, and with no variable set in the shell."""

from __future__ import annotations

import re
from pathlib import Path

from sync.commands.demo import SECRET_ENV
from sync.sandbox import SandboxServer
from tests.support.cli import invoke_in


def test_the_demo_config_plans_clean_against_its_sandbox_served_again(tmp_path: Path) -> None:
    demo = invoke_in(tmp_path, "demo", "--dir", "d", env={SECRET_ENV: None})
    assert demo.exit_code == 0, demo.stderr[-2000:]
    folder = tmp_path / "d"
    told = re.search(r"pluvo-sync sandbox --port (\d+) --state-file (\S+)`", demo.stdout)
    assert told is not None, demo.stdout[-1000:]
    assert Path(told.group(2)) == folder / "sandbox.json"
    assert f"#   pluvo-sync sandbox --port {told.group(1)}" in (folder / "config.yaml").read_text()
    with SandboxServer(port=int(told.group(1)), state_file=Path(told.group(2))) as sandbox:
        assert len(sandbox.control.state()["users"]) == 36  # what the demo synced
        again = invoke_in(folder, "-c", "config.yaml", "plan", env={SECRET_ENV: None})
    assert "not set" not in again.stderr, again.stderr[-2000:]
    assert again.exit_code == 3, again.stderr[-2000:]  # the sample's rejected rows
    assert "0 operation(s) for 36 desired user(s), 36 known" in again.stdout
