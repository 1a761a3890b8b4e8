"""A throwaway PostgreSQL cluster on a private Unix socket, from the machine's own binaries.

initdb refuses to run as root, so as root the server runs as the ``postgres`` user (runuser).
Used by the tests and the benchmarks; a cluster that cannot start is an error, never a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found (initdb); install Debian's postgresql package "
            "(make setup does this)"
        )
    return Path(candidates[-1]).parent


@dataclass
class PgCluster:
    root: Path
    bindir: Path
    as_user: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr or result.stdout}")
        return result

    @classmethod
    def start(cls) -> PgCluster:
        bindir = _bindir()
        as_user = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="recovery-pg-"))
        cluster = cls(root=root, bindir=bindir, as_user=as_user)
        cluster.socket_dir.mkdir()
        if as_user:
            shutil.chown(root, user=as_user)
            shutil.chown(cluster.socket_dir, user=as_user)
            root.chmod(0o755)
        cluster._run(str(bindir / "initdb"), "-D", str(cluster.data_dir), "-A", "trust", "-U", "postgres",
                     "-E", "UTF8", "--no-sync", "--locale=C")
        cluster.start_server()
        return cluster

    def start_server(self) -> None:
        options = (
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop_server(self) -> None:
        """Stop the server, keeping its data (a database outage in a test)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def pg_ctl(self, *args: str) -> None:
        """Stop/start the server in a test (e.g. database outage)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args)

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} user=postgres dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.socket_dir}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            if template:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
