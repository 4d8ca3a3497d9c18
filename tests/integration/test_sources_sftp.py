"""The SFTP source against a real asyncssh server on loopback."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from sync.config.sources import SftpSourceConfig
from sync.core.sources import open_source
from sync.core.sources.sftp import SftpCsvSource
from sync.errors import SourceError
from tests.integration.conftest import SftpServer

pytestmark = pytest.mark.sftp


def config(server: SftpServer, tmp_path: Path, **options: Any) -> SftpSourceConfig:
    values: dict[str, Any] = {
        "name": "hr",
        "type": "sftp",
        "mapping": "m.yaml",
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "known_hosts": str(server.known_hosts),
        "path": "in/hr_*.csv",
        "timeout": 5,
    }
    values.update(options)
    values = {k: v for k, v in values.items() if v is not None}
    return SftpSourceConfig.model_validate(values, context={"base_dir": tmp_path})


def source(server: SftpServer, tmp_path: Path, **options: Any) -> SftpCsvSource:
    opened = open_source(config(server, tmp_path, **options), base_dir=tmp_path)
    assert isinstance(opened, SftpCsvSource)
    return opened


def put(server: SftpServer, name: str, text: str, mtime: float) -> Path:
    path = server.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("cp1252"))
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def inbox(sftp_server: SftpServer) -> SftpServer:
    put(sftp_server, "in/hr_2026-11-23.csv", "ref;name\n001;Old\n", 1_000_000)
    put(sftp_server, "in/hr_2026-11-24.csv", "ref;name\n002;René\n\n003;Zoë\n", 2_000_000)
    put(sftp_server, "in/other.csv", "ref\nx\n", 3_000_000)
    return sftp_server


def test_reads_newest_with_password(inbox: SftpServer, tmp_path: Path) -> None:
    data = source(inbox, tmp_path).read()
    shown = f"sftp://127.0.0.1:{inbox.port}/in/hr_2026-11-24.csv"
    assert data.files == [shown]
    assert data.columns == ["ref", "name"]
    assert data.frame.to_dict("records") == [
        {"ref": "002", "name": "René", "_file": shown, "_line": 2},
        {"ref": "003", "name": "Zoë", "_file": shown, "_line": 4},
    ]


def test_reads_all_with_key_and_passphrase(inbox: SftpServer, tmp_path: Path) -> None:
    src = source(
        inbox,
        tmp_path,
        password=None,
        private_key=str(inbox.client_key),
        private_key_passphrase=inbox.client_key_passphrase,
        pick="all",
    )
    data = src.read()
    assert data.frame["ref"].tolist() == ["001", "002", "003"]
    assert [f.rsplit("/", 1)[1] for f in data.frame["_file"]] == [
        "hr_2026-11-23.csv",
        "hr_2026-11-24.csv",
        "hr_2026-11-24.csv",
    ]


def test_archive_after_applied_run_only(inbox: SftpServer, tmp_path: Path) -> None:
    put(inbox, "done/hr_2026-11-24.csv", "already archived\n", 1)
    src = source(inbox, tmp_path, archive_dir="done", pick="all")
    src.read()
    src.finalize(applied=False)
    assert (inbox.root / "in" / "hr_2026-11-24.csv").exists()
    src.finalize(applied=True)
    assert sorted(p.name for p in (inbox.root / "in").iterdir()) == ["other.csv"]
    archived = sorted(p.name for p in (inbox.root / "done").iterdir())
    assert "hr_2026-11-23.csv" in archived
    assert "hr_2026-11-24.csv" in archived
    assert len(archived) == 3  # the clash got a timestamped name
    assert (inbox.root / "done" / "hr_2026-11-24.csv").read_text() == "already archived\n"


def test_archive_dir_created_when_missing(inbox: SftpServer, tmp_path: Path) -> None:
    src = source(inbox, tmp_path, archive_dir="archive/2026")
    src.read()
    src.finalize(applied=True)
    assert [p.name for p in (inbox.root / "archive" / "2026").iterdir()] == ["hr_2026-11-24.csv"]


def test_wrong_password_refused_without_leaking_it(inbox: SftpServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        source(inbox, tmp_path, password="wrong-password-123").read()
    message = str(info.value)
    assert f"SFTP login refused for user hrsync on 127.0.0.1:{inbox.port}" in message
    assert "wrong-password-123" not in message
    assert "wrong-password-123" not in repr(config(inbox, tmp_path, password="wrong-password-123"))


def test_wrong_key_refused(inbox: SftpServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="SFTP login refused for user hrsync"):
        source(inbox, tmp_path, password=None, private_key=str(inbox.other_key)).read()


def test_wrong_key_passphrase(inbox: SftpServer, tmp_path: Path) -> None:
    src = source(
        inbox,
        tmp_path,
        password=None,
        private_key=str(inbox.client_key),
        private_key_passphrase="not-the-passphrase",
    )
    with pytest.raises(SourceError, match="cannot load private key") as info:
        src.read()
    assert "not-the-passphrase" not in str(info.value)


def test_changed_host_key_refused(inbox: SftpServer, tmp_path: Path) -> None:
    import asyncssh

    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    inbox.known_hosts.write_text(f"[127.0.0.1]:{inbox.port} {impostor}", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        source(inbox, tmp_path).read()
    message = str(info.value)
    assert f"host key of 127.0.0.1:{inbox.port} does not match known_hosts" in message
    assert inbox.fingerprint in message


def test_unknown_host_key_refused(inbox: SftpServer, tmp_path: Path) -> None:
    inbox.known_hosts.write_text("", encoding="utf-8")
    with pytest.raises(SourceError, match=r"host key of 127\.0\.0\.1:\d+ is unknown"):
        source(inbox, tmp_path).read()


def test_pinned_fingerprint_match(inbox: SftpServer, tmp_path: Path) -> None:
    src = source(inbox, tmp_path, known_hosts=None, host_key_fingerprint=inbox.fingerprint)
    assert src.read().frame["ref"].tolist() == ["002", "003"]


def test_pinned_fingerprint_mismatch(inbox: SftpServer, tmp_path: Path) -> None:
    pinned = "SHA256:" + "A" * 43
    src = source(inbox, tmp_path, known_hosts=None, host_key_fingerprint=pinned)
    with pytest.raises(SourceError) as info:
        src.read()
    assert "does not match the pinned fingerprint" in str(info.value)
    assert f"server presented {inbox.fingerprint}" in str(info.value)


def test_no_file_matched(inbox: SftpServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no file matched sftp://127\.0\.0\.1:\d+/in/x_\*"):
        source(inbox, tmp_path, path="in/x_*.csv").read()


def test_missing_directory(inbox: SftpServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"SFTP error .* while listing nowhere"):
        source(inbox, tmp_path, path="nowhere/*.csv").read()


def test_bad_file_is_named_by_url(inbox: SftpServer, tmp_path: Path) -> None:
    put(inbox, "in/hr_2026-11-25.csv", "", 4_000_000)
    with pytest.raises(
        SourceError, match=r"sftp://127\.0\.0\.1:\d+/in/hr_2026-11-25\.csv is empty"
    ):
        source(inbox, tmp_path).read()


def test_timeout_on_a_server_that_never_speaks(sftp_server: SftpServer, tmp_path: Path) -> None:
    src = source(sftp_server, tmp_path, port=sftp_server.silent_port, timeout=0.5)
    with pytest.raises(SourceError, match=r"did not complete the connection within 0\.5s"):
        src.read()


def test_connection_refused(sftp_server: SftpServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(SourceError, match=r"cannot connect to SFTP server 127\.0\.0\.1:\d+"):
        source(sftp_server, tmp_path, port=free_port).read()


async def test_read_from_inside_an_event_loop(inbox: SftpServer, tmp_path: Path) -> None:
    src = source(inbox, tmp_path)
    assert asyncio.get_running_loop() is not None
    assert src.read().frame["ref"].tolist() == ["002", "003"]
