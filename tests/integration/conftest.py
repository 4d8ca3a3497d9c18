"""Real servers for integration tests: an SFTP server on loopback and PostgreSQL.

Each fixture is self-contained; add new ones in their own section.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# -- SFTP ---------------------------------------------------------------------------

SFTP_USER = "hrsync"
SFTP_PASSWORD = "s3cret-sftp-pw"  # a throwaway test credential


class _LoopThread:
    """An event loop in a daemon thread, so servers keep serving while the test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class SftpServer:
    """A running server; `root` is the directory clients see as `/`."""

    host: str
    port: int
    root: Path
    known_hosts: Path
    fingerprint: str
    client_key: Path
    client_key_passphrase: str
    other_key: Path
    silent_port: int
    username: str = SFTP_USER
    password: str = SFTP_PASSWORD
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SftpServer]:
    """asyncssh on 127.0.0.1 with password and key auth, chrooted to a tmp dir.

    Also listens on `silent_port` with a TCP server that accepts and never speaks,
    to test timeouts.
    """
    import asyncssh

    root = tmp_path / "sftp-root"
    root.mkdir()
    keys = tmp_path / "keys"
    keys.mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    other_key = asyncssh.generate_private_key("ssh-ed25519")
    passphrase = "key-passphrase"
    # PKCS#8 encryption needs no bcrypt (OpenSSH-format encryption would).
    client_key.write_private_key(keys / "client", "pkcs8-pem", passphrase=passphrase)
    other_key.write_private_key(keys / "other")
    client_key.write_public_key(keys / "authorized_keys")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == SFTP_USER and password == SFTP_PASSWORD

    def sftp_factory(chan: Any) -> Any:
        return asyncssh.SFTPServer(chan, chroot=str(root).encode())

    silent_writers: list[asyncio.StreamWriter] = []

    async def start() -> tuple[Any, Any]:
        ssh = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=str(keys / "authorized_keys"),
            server_factory=Server,
            sftp_factory=sftp_factory,
        )

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            silent_writers.append(writer)  # held open, closed at teardown

        quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
        return ssh, quiet

    loop = _LoopThread()
    ssh, quiet = loop.run(start())
    port = ssh.sockets[0].getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}", encoding="utf-8"
    )
    try:
        yield SftpServer(
            host="127.0.0.1",
            port=port,
            root=root,
            known_hosts=known_hosts,
            fingerprint=host_key.get_fingerprint("sha256"),
            client_key=keys / "client",
            client_key_passphrase=passphrase,
            other_key=keys / "other",
            silent_port=quiet.sockets[0].getsockname()[1],
        )
    finally:

        async def stop() -> None:
            ssh.close()
            quiet.close()
            for writer in silent_writers:
                writer.close()
            await ssh.wait_closed()
            await quiet.wait_closed()

        loop.run(stop())
        loop.close()


# -- PostgreSQL ----------------------------------------------------------------------

PG_ENV = "PLUVO_SYNC_TEST_PG_URL"


def require_pg_url() -> str:
    """The test server's URL; skipped (visibly) without one, failing in CI where it must exist."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set but CI is: PostgreSQL tests must run in CI")
        pytest.skip(f"{PG_ENV} is not set; PostgreSQL tests skipped")
    return url


@pytest.fixture
def pg_url() -> str:
    return require_pg_url()


@contextmanager
def scratch_database(pg_url: str, prefix: str) -> Iterator[str]:
    """A database of its own on the test server (its URL), dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
