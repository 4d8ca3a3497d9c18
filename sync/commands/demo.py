"""`pluvo-sync demo`: the whole engine on sample HR data, against a local sandbox.

It is the README's first command: it must work on a fresh machine with nothing but
Python, so it brings its own Pluvo (the sandbox, on a free loopback port) and its
own state store (SQLite in the demo folder), and writes a real config file the user
can then run the other commands against while the demo sandbox is gone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from sync.commands.render import render_plan, render_report
from sync.config import load_config
from sync.core import engine
from sync.errors import ConfigError, ExitCode
from sync.resources import example_mapping, sample_export
from sync.state.store import StateStore, upgrade

SECRET_ENV = "PLUVO_DEMO_CLIENT_SECRET"
MARKER = ".pluvo-sync-demo"
"""Marks a folder the demo made; only such a folder is ever cleaned."""
MADE = ("hr", "mapping.yaml", "config.yaml", "state.db", "state.db-wal", "state.db-shm", "reports")
"""What the demo writes into its folder, and so all it removes there."""

CONFIG = """\
# Written by `pluvo-sync demo`; see config.example.yaml for every key.
pluvo:
  url: {url}
  client_id: sandbox-client
  client_secret: ${{{secret_env}}}
  batch_size: 25
  concurrency: 4
sources:
  - name: hr
    type: csv
    path: hr/*.csv
    mapping: mapping.yaml
state:
  url: sqlite:///state.db
leavers:
  action: archive
  grace_runs: 0
report:
  dir: reports
"""


def _section(title: str) -> None:
    click.echo("")
    click.secho(f"== {title}", bold=True)


def run_demo(workdir: Path, *, verbose: bool = False) -> int:
    from sync.sandbox.server import SandboxServer

    workdir = workdir.resolve()
    prepare(workdir)
    (workdir / "hr").mkdir(parents=True)
    shutil.copy(sample_export(), workdir / "hr" / "hr.csv")
    shutil.copy(example_mapping(), workdir / "mapping.yaml")
    with SandboxServer(port=0) as sandbox:
        (workdir / "config.yaml").write_text(
            CONFIG.format(url=sandbox.url, secret_env=SECRET_ENV), encoding="utf-8"
        )
        os.environ[SECRET_ENV] = "sandbox-secret"
        config = load_config(workdir / "config.yaml")
        click.echo(f"sandbox (a local Pluvo look-alike) at {sandbox.url}")
        click.echo(f"demo files in {workdir}")

        _section("pluvo-sync db upgrade")
        store = StateStore(config.state_url())
        before, after = upgrade(store.engine)
        store.close()
        click.echo(f"state store upgraded from {before or 'empty'} to {after}")

        _section("pluvo-sync plan  (dry run: nothing is sent)")
        planned = engine.run(config, dry=True)
        click.echo(render_plan(planned, verbose=verbose))

        _section("pluvo-sync run")
        report = engine.run(config, dry=False)
        click.echo(render_report(report))

        _section("pluvo-sync plan  (again: everything is in line now)")
        again = engine.run(config, dry=True)
        click.echo(render_plan(again, verbose=verbose))

        counters = sandbox.control.counters()
        state = sandbox.control.state()
        _section("what the sandbox saw")
        click.echo(f"requests: {counters.get('graphql_requests', counters.get('requests'))}")
        click.echo(
            f"users in Pluvo: {len(state.get('users', []))}, groups: {len(state.get('groups', []))}"
        )
    converged = again.plan is not None and len(again.plan) == 0
    ok = report.exit_code in (ExitCode.OK, ExitCode.PARTIAL) and converged
    click.echo("")
    if ok:
        click.echo(
            f"demo complete: {report.rejected} sample row(s) were rejected on purpose "
            "(listed above, with file and line); the second plan is empty."
        )
        return 0
    click.echo("demo did not converge; see the output above", err=True)
    return int(ExitCode.FAILED)


def prepare(workdir: Path) -> None:
    """Make `workdir` ready for a fresh demo, destroying nothing the demo did not make.

    A new or empty folder is used as it is. A folder an earlier demo made (it holds
    the marker) loses what that demo wrote and keeps anything else. Any other
    non-empty folder is refused: `demo --dir .` in a config folder must not wipe it.
    """
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"demo: {workdir} is a file, not a folder; choose another --dir")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise ConfigError(
                f"demo: {workdir} is not empty and was not made by `pluvo-sync demo`; "
                "nothing was changed (choose a new or empty --dir)"
            )
        for name in MADE:
            target = workdir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(
        "This folder was made by `pluvo-sync demo`, which may clean what it wrote here.\n",
        encoding="utf-8",
    )
