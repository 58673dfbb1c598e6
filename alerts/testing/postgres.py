"""A PostgreSQL of a test's own, that fault tests stop the hard way and start again."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .ports import free_port


def _pg_bin() -> Path:
    """Debian's newest PostgreSQL server binaries (what the fault tests start a private one from)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


class PostgresServer:
    """A PostgreSQL of the test's own (its own data directory and port), that can be stopped
    the hard way and started again with its data. It refuses to run as root, so when the
    tests are root it runs as the `postgres` user, in a directory of its own under the
    system's temporary directory (pytest's tmp_path is root's alone); `remove` deletes it."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            workdir = Path(tempfile.mkdtemp(prefix="alerts-pg-"))
            shutil.chown(workdir, "postgres")
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self.logfile = workdir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def init(self) -> PostgresServer:
        self.datadir.mkdir(parents=True)
        self.logfile.touch()
        if self._as:
            shutil.chown(self.datadir, "postgres")
            shutil.chown(self.logfile, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        return self

    def start(self) -> PostgresServer:
        """Start it and wait until it takes connections."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                  "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=200", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash as far as clients see: every connection cut, no goodbye."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        if self._as:
            shutil.rmtree(self.workdir, ignore_errors=True)
