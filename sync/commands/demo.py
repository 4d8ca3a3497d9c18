"""`pluvo-sync demo`: the whole engine on sample HR data, against a local sandbox.

It is the README's first command: it must work on a fresh machine with nothing but
Python, so it brings its own Pluvo (the sandbox, on a free loopback port) and its
own state store (SQLite in the demo folder), and writes a real config file the user
can then run the other commands against: offline ones (status, history, held) at once,
and the others against the same sandbox served again from the data it saved
(`sandbox.json`), on the port the config names.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from urllib.parse import urlsplit

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
MADE = (
    "hr",
    "mapping.yaml",
    "config.yaml",
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "reports",
    "sandbox.json",
)
"""What the demo writes into its folder, and so all it removes there."""

CONFIG = """\
# Written by `pluvo-sync demo`; `pluvo-sync init DIR` writes a config explaining every key.
# To go on with it, serve the demo's sandbox again (its data is in sandbox.json):
#   pluvo-sync sandbox --port {port} --state-file {state_file}
# then, in another terminal: pluvo-sync -c {config} plan
pluvo:
  url: {url}
  client_id: sandbox-client
  # The sandbox's published secret, unless ${secret_env} says otherwise; a real
  # Pluvo's secret is only ever named here (${{PLUVO_CLIENT_SECRET}}), never written.
  client_secret: ${{{secret_env}:-sandbox-secret}}
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
    state_file = workdir / "sandbox.json"
    config_file = workdir / "config.yaml"
    with SandboxServer(port=0, state_file=state_file) as sandbox:
        port = urlsplit(sandbox.url).port
        config_file.write_text(
            CONFIG.format(
                url=sandbox.url,
                secret_env=SECRET_ENV,
                port=port,
                state_file=shlex.quote(str(state_file)),
                config=shlex.quote(str(config_file)),
            ),
            encoding="utf-8",
        )
        config = load_config(config_file)
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
        click.echo(
            f"to go on: `pluvo-sync sandbox --port {port} --state-file "
            f"{shlex.quote(str(state_file))}` serves its Pluvo again, then "
            f"`pluvo-sync -c {shlex.quote(str(config_file))} plan`"
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
