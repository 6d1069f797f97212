"""What the storage and migration tests share beyond botcore.testing's fresh databases:
the core's head revision, and a throwaway PostgreSQL cluster of the test's own (to stop
and restart under a running bot)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from botcore.testing import free_port, unavailable


def core_head() -> str:
    """The newest core revision (the bundled plugins' tables included)."""
    from botcore.db import migrate

    return migrate.script_directory().get_revision("botcore@head").revision


# -- a throwaway PostgreSQL cluster ----------------------------------------------------------


class PostgresCluster:
    """A PostgreSQL cluster of the test's own, in a temporary folder on a free loopback
    port, run as the ``postgres`` user (the tests run as root). Stopped and removed by
    `destroy`."""

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not binaries:
            unavailable("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
        self.bin = binaries[-1].parent
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="botcore-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            self.user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.user, *command],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.directory,
        )

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
            f"{self.directory} -c fsync=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        self.wait_for_port()

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def wait_for_port(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"PostgreSQL did not listen on port {self.port}")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
