"""Start-up is part of a plan's time: a command loads only what it needs.

A no-change plan of a small export is mostly interpreter start-up and imports, so an
eager import of something the plan never uses (Alembic for the schema check, gql for
raw documents, the sandbox's aiohttp.web server, the doctor, reconcile, SFTP, rich)
costs every nightly run and every dry run. These tests run the real command in a
fresh interpreter and list what it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sync.sandbox import SandboxServer
from tests.support.workspace import employees, make_workspace

NOT_FOR_A_PLAN = (
    "alembic",
    "gql",
    "rich",
    "asyncssh",
    "aiohttp.web",
    "sync.sandbox",
    "sync.commands.doctor",
    "sync.commands.reconcile",
    "sync.commands.html",
)
"""Modules (and their submodules) a `plan` without --html must not load."""

NOT_FOR_THE_CLI = ("pandas", "numpy", "sqlalchemy", "aiohttp", "pydantic", "graphql")
"""What `import sync.cli` (every command's first step, `--help` included) must not load."""

_LOADED = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["pluvo-sync", *sys.argv[1:]]
from sync.cli import main
main()
"""


def _offending(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_a_plan_loads_nothing_it_does_not_use(tmp_path: Path, sandbox: SandboxServer) -> None:
    ws = make_workspace(tmp_path, sandbox.url)
    ws.write_hr(employees(6))
    assert ws.cli("run").returncode == 0
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, "plan", "-c", str(ws.config_file)],
        cwd=ws.root, env=ws.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "0 operation(s)" in result.stdout  # it did plan, and read Pluvo's categories
    modules = json.loads(result.stderr.strip().splitlines()[-1])
    assert "sync.pluvo.client" in modules  # it did talk to Pluvo
    assert _offending(modules, NOT_FOR_A_PLAN) == []


def test_the_command_line_module_loads_no_engine() -> None:
    code = "import json, sys, sync.cli; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert _offending(json.loads(result.stdout), NOT_FOR_THE_CLI) == []
