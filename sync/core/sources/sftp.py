"""CSV exports fetched from an SFTP server (asyncssh), parsed by the shared CsvParser.

The server's host key is always verified, against a known_hosts file or a pinned
SHA256 fingerprint: an HR export is personal data, and silently trusting a new key
would hand it to whoever answers on that address. Files are fetched into memory and
only moved to the archive after a real run applied them, so a dry run or a failed
run leaves the inbox as it was for the next attempt.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import posixpath
import stat
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from sync.config.sources import SftpSourceConfig
from sync.core.sources.base import SourceData, concat_frames
from sync.core.sources.csv import CsvParser
from sync.core.sources.local import pick_files
from sync.errors import SourceError
from sync.logs import redact, register_secret

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from synchronous code, even when called inside an event loop.

    Inside a running loop `asyncio.run` is refused, so the coroutine gets a loop of its
    own in a worker thread; the caller blocks either way, as `read()` promises.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sftp") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


@dataclass(frozen=True)
class RemoteFile:
    path: str
    mtime: float


class _HostKeyCheck(asyncssh.SSHClient):
    """Sees the key the server presented, to tell 'unknown' from 'changed' and to pin."""

    def __init__(self, pinned: str | None) -> None:
        self.pinned = pinned
        self.presented: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key.get_fingerprint("sha256")
        return self.pinned is not None and self.presented == self.pinned


class SftpCsvSource:
    def __init__(self, config: SftpSourceConfig, *, base_dir: Path) -> None:
        self.name = config.name
        self.config = config
        self.base_dir = base_dir
        self.parser = CsvParser(
            source=config.name, encoding=config.encoding, delimiter=config.delimiter
        )
        self.where = f"{config.host}:{config.port}"
        if config.password is not None:
            register_secret(config.password.get_secret_value())
        if config.private_key_passphrase is not None:
            register_secret(config.private_key_passphrase.get_secret_value())
        self._read: list[str] = []

    def __repr__(self) -> str:
        return f"SftpCsvSource(name={self.name!r}, host={self.where!r}, path={self.config.path!r})"

    def display(self, path: str) -> str:
        host = self.config.host if self.config.port == 22 else self.where
        return f"sftp://{host}/{path.lstrip('/')}"

    # -- public API -------------------------------------------------------------------

    def read(self) -> SourceData:
        fetched = run_sync(self._fetch)
        parsed = [self.parser.parse_bytes(data, self.display(path)) for path, data in fetched]
        frame, columns = concat_frames([p.frame for p in parsed])
        for item in parsed:
            log.info("source %s: read %d rows from %s", self.name, len(item.frame), item.display)
        self._read = [path for path, _ in fetched]
        return SourceData(
            name=self.name, frame=frame, files=[p.display for p in parsed], columns=columns
        )

    def finalize(self, *, applied: bool) -> None:
        """After an applied run, move the files read to archive_dir on the server."""
        if not applied or self.config.archive_dir is None or not self._read:
            return
        run_sync(self._archive)
        self._read = []

    # -- SFTP work ----------------------------------------------------------------------

    async def _op(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.config.timeout)
        except TimeoutError:
            raise SourceError(
                f"source {self.name}: SFTP server {self.where} did not answer within "
                f"{self.config.timeout:g}s while {what}"
            ) from None
        except asyncssh.SFTPError as exc:
            raise SourceError(
                f"source {self.name}: SFTP error on {self.where} while {what}: {exc.reason}"
            ) from None

    async def _fetch(self) -> list[tuple[str, bytes]]:
        result: list[tuple[str, bytes]] = []
        async with await self._connect() as conn:
            sftp = await self._op(conn.start_sftp_client(), "starting SFTP")
            async with sftp:
                for path in await self._list(sftp):
                    data = await self._op(self._download(sftp, path), f"downloading {path}")
                    result.append((path, data))
        return result

    @staticmethod
    async def _download(sftp: asyncssh.SFTPClient, path: str) -> bytes:
        async with sftp.open(path, "rb") as handle:
            data: bytes = await handle.read()
            return data

    async def _list(self, sftp: asyncssh.SFTPClient) -> list[str]:
        directory, pattern = posixpath.split(self.config.path)
        names = await self._op(sftp.readdir(directory or "."), f"listing {directory or '.'}")
        matches = []
        for entry in names:
            attrs = entry.attrs
            if attrs.permissions is not None and not stat.S_ISREG(attrs.permissions):
                continue
            name = entry.filename
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            if fnmatch.fnmatchcase(name, pattern):
                path = posixpath.join(directory, name) if directory else name
                matches.append(RemoteFile(path, float(attrs.mtime or 0)))
        if not matches:
            raise SourceError(
                f"source {self.name}: no file matched {self.display(self.config.path)}"
            )
        return pick_files([(m.path, m.mtime) for m in matches], self.config.pick)

    async def _archive(self) -> None:
        archive = self.config.archive_dir
        assert archive is not None
        async with await self._connect() as conn:
            sftp = await self._op(conn.start_sftp_client(), "starting SFTP")
            async with sftp:
                await self._op(sftp.makedirs(archive, exist_ok=True), f"creating {archive}")
                for path in self._read:
                    name = posixpath.basename(path)
                    target = posixpath.join(archive, name)
                    if await self._op(sftp.exists(target), f"checking {target}"):
                        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                        stem, dot, suffix = name.rpartition(".")
                        stamped = f"{stem}.{stamp}{dot}{suffix}" if stem else f"{name}.{stamp}"
                        target = posixpath.join(archive, stamped)
                    await self._op(sftp.rename(path, target), f"archiving {path}")
                    log.info("source %s: archived %s to %s", self.name, path, target)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        config = self.config
        checker = _HostKeyCheck(config.host_key_fingerprint)
        options: dict[str, Any] = {
            "port": config.port,
            "username": config.username,
            "config": None,  # the operator's ~/.ssh/config must not change what we trust
            "agent_path": None,
            "client_keys": self._client_keys(),
            "password": config.password.get_secret_value() if config.password else None,
            "connect_timeout": config.timeout,
            "login_timeout": config.timeout,
            "known_hosts": self._known_hosts(),
            "client_factory": lambda: checker,
        }
        if config.host_key_fingerprint is not None:
            options["server_host_key_algs"] = "default"
        try:
            conn: asyncssh.SSHClientConnection = await asyncio.wait_for(
                asyncssh.connect(config.host, **options), config.timeout * 2
            )
        except asyncssh.PermissionDenied:
            raise SourceError(
                f"source {self.name}: SFTP login refused for user {config.username} on {self.where}"
            ) from None
        except asyncssh.HostKeyNotVerifiable:
            raise SourceError(self._host_key_problem(checker.presented)) from None
        except TimeoutError:
            raise SourceError(
                f"source {self.name}: SFTP server {self.where} did not complete the "
                f"connection within {config.timeout:g}s"
            ) from None
        except asyncssh.Error as exc:
            raise SourceError(
                f"source {self.name}: SFTP connection to {self.where} failed: "
                f"{redact(str(exc.reason))}"
            ) from None
        except OSError as exc:
            raise SourceError(
                f"source {self.name}: cannot connect to SFTP server {self.where}: "
                f"{redact(exc.strerror or str(exc))}"
            ) from None
        return conn

    def _client_keys(self) -> list[asyncssh.SSHKey] | None:
        """The configured key only: never whatever happens to be in ~/.ssh."""
        config = self.config
        if config.private_key is None:
            return None
        passphrase = (
            config.private_key_passphrase.get_secret_value()
            if config.private_key_passphrase
            else None
        )
        try:
            return [asyncssh.read_private_key(str(config.private_key), passphrase)]
        except (asyncssh.KeyImportError, OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SourceError(
                f"source {self.name}: cannot load private key {config.private_key}: "
                f"{redact(reason)}"
            ) from None

    def _known_hosts(self) -> Any:
        config = self.config
        if config.host_key_fingerprint is not None:
            # Nothing trusted up front: every key goes to _HostKeyCheck, which pins.
            return lambda host, addr, port: ([], [], [])
        assert config.known_hosts is not None
        try:
            return asyncssh.read_known_hosts(str(config.known_hosts))
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SourceError(
                f"source {self.name}: cannot read known_hosts {config.known_hosts}: {reason}"
            ) from None

    def _host_key_problem(self, presented: str | None) -> str:
        config = self.config
        got = f" (server presented {presented})" if presented else ""
        if config.host_key_fingerprint is not None:
            return (
                f"source {self.name}: host key of {self.where} does not match the pinned "
                f"fingerprint {config.host_key_fingerprint}{got}"
            )
        known = asyncssh.read_known_hosts(str(config.known_hosts))
        port = None if config.port == 22 else config.port
        trusted, _, _, *_ = known.match(config.host, "", port)
        if trusted:
            return (
                f"source {self.name}: host key of {self.where} does not match known_hosts "
                f"{config.known_hosts}{got}; if the server's key really changed, "
                "update known_hosts after checking the new fingerprint"
            )
        return (
            f"source {self.name}: host key of {self.where} is unknown: no entry in "
            f"known_hosts {config.known_hosts}{got}; add it after checking the fingerprint"
        )
