"""Real servers for the team-mode tests: a private PostgreSQL cluster and an `mlflow server`.

PostgreSQL runs from a temporary folder on 127.0.0.1 and a free port (as the `postgres` system user when
the tests run as root: initdb refuses root). Each test gets databases of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    """A PostgreSQL program: on PATH, else where Debian's packages put it."""
    import glob

    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: the team-mode tests need PostgreSQL installed")
    return found


def _as_owner(cmd: list[str]) -> list[str]:
    cmd = [_tool(cmd[0]), *cmd[1:]]
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://weightgate@127.0.0.1:{self.port}/{database}"

    def create(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of `template` when given); returns its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=weightgate dbname=postgres",
                             autocommit=True) as conn:
            if template:  # a template must have no other connection (a finished test's pooled one)
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (template,))
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=weightgate dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="weightgate-pg-"))
    data, port = root / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    env = {**os.environ, "LC_ALL": "C"}
    run = {"check": True, "capture_output": True, "env": env, "cwd": root}
    subprocess.run(_as_owner(["initdb", "-D", str(data), "-U", "weightgate", "--auth=trust", "-E", "UTF8"]), **run)
    subprocess.run(_as_owner(["pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
                              "start"]), **run)
    try:
        yield Postgres(root, port)
    finally:
        subprocess.run(_as_owner(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]), capture_output=True,
                       env=env, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path, workers: int = 1) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with `backend` as its store and proxied artifacts in `artifacts`."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
