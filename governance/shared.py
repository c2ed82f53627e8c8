"""A team store's shared parts: what every member must see, kept on the team's servers.

- Blobs (weights, deltas, sealed data, policies) are content-addressed files in an artifact store: by
  default the MLflow tracking server's proxied artifacts (``mlflow-artifacts://HOST:PORT/weightgate/MODEL/
  blobs``), or any MLflow artifact URI (``s3://``, ``gs://``, ``file://`` on a shared disk). A member's
  ``blobs/`` is a cache: a missing blob is fetched on first read and verified by its sha256 like any blob.
- Proposal files (manifests, data, reports, decisions) are rows of the ledger database (table
  ``shared_files``): a numbered envelope claims its name in a transaction, so two approvers or two checks
  at once never take the same name, and a forget's removals reach every member. A member's ``proposals/``
  is a cache, brought in line with the rows before it is read.

Nothing here is trusted: every file is verified by its readers exactly as a local one is.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, delete, select, text
from sqlalchemy.engine import Engine

from governance.errors import UsageError

_meta = MetaData()
files_table = Table(
    "shared_files", _meta,
    Column("path", String(512), primary_key=True),  # relative to the store: proposals/ID/...
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
)


LOCK_WAIT_S = 300  # how long a writer waits for another member's write


@contextlib.contextmanager
def row_lock(engine: Engine, table: Table) -> Iterator[None]:
    """A transaction holding the one row of `table` (FOR UPDATE): released by its commit, its rollback or
    the death of its connection. A writer waiting over LOCK_WAIT_S is refused with a one-line message."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    with contextlib.suppress(IntegrityError), engine.begin() as conn:
        if conn.execute(select(table.c.id)).first() is None:
            conn.execute(table.insert().values(id=1))
    with engine.connect() as conn, conn.begin():
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT_S}s'"))
        try:
            conn.execute(select(table.c.id).where(table.c.id == 1).with_for_update())
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            raise UsageError(f"another member's write has held the ledger lock for over {LOCK_WAIT_S} s; "
                             "try again") from None
        yield


def vacuum(engine: Engine, tables: tuple[str, ...]) -> None:
    """VACUUM FULL the tables that exist. Run it with no transaction of this process open: a dead row an open
    transaction may still see is copied into the new table, not dropped. The write-ahead log, replicas and
    backups keep what they hold until they are recycled."""
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            if table in present:
                conn.execute(text(f"VACUUM FULL {table}"))


class BlobRemote:
    """Blobs in an MLflow artifact repository, named ``ab/abcdef...`` by their sha256."""

    def __init__(self, uri: str, tracking_uri: str | None) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        self.uri = uri
        self.repo = get_artifact_repository(uri, tracking_uri=tracking_uri)

    def _size(self, digest: str) -> int | None:
        """The stored object's size; None when there is none."""
        return next((f.file_size for f in self.repo.list_artifacts(digest[:2]) if f.path.endswith(digest)), None)

    def exists(self, digest: str) -> bool:
        return self._size(digest) is not None

    def push(self, path: Path, digest: str) -> None:
        """Upload the blob unless an object of its name and size is there (one of another size, cut short or
        planted, is replaced; readers check every byte against the name anyway)."""
        if self._size(digest) != path.stat().st_size:
            self.repo.log_artifact(str(path), digest[:2])

    def push_all(self, items: list[tuple[Path, str]], workers: int = 8) -> None:
        """Push many blobs, `workers` requests at a time; the first failure is raised once all are done."""
        from concurrent.futures import ThreadPoolExecutor

        unique = list(dict((digest, path) for path, digest in items).items())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(self.push, path, digest) for digest, path in unique]:
                future.result()

    def fetch(self, digest: str, folder: Path) -> Path | None:
        """Download the blob into `folder`; None when the store does not have it."""
        if not self.exists(digest):
            return None
        return Path(self.repo.download_artifacts(f"{digest[:2]}/{digest}", str(folder)))

    def delete(self, digest: str) -> None:
        if self.exists(digest):
            self.repo.delete_artifacts(f"{digest[:2]}/{digest}")


def default_blobs_uri(tracking_uri: str, model_name: str) -> str | None:
    """The MLflow server's proxied artifacts, for a store whose tracking URI is a server."""
    from urllib.parse import urlparse

    u = urlparse(tracking_uri)
    return f"mlflow-artifacts://{u.netloc}/weightgate/{model_name}/blobs" if u.scheme in ("http", "https") else None


@functools.cache
def _engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    return create_engine(url, pool_pre_ping=True)


def team_files(ledger_url: str, home: Path) -> SharedFiles | None:
    """The shared proposal files of a store whose ledger is on a database server; None for an embedded one."""
    return None if ledger_url.startswith("sqlite") else SharedFiles(_engine(ledger_url), home)


_hashed: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime) -> sha256, for this process


def _sha(path: Path) -> str:
    """A cached file's sha256, hashed again only when the file changed (pull runs before every read)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _hashed:
        _hashed[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _hashed[key]


@contextlib.contextmanager
def _reached() -> Iterator[None]:
    """A database that does not answer is one line (exit 2), not a traceback."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise UsageError(f"the team's database does not answer ({str(exc.orig or exc).splitlines()[0][:160]})") \
            from None


class SharedFiles:
    """The proposal files of a team store, in the ledger database; `root` is the member's cache of them."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.root = root  # the store's home: rows are named relative to it
        with _reached():
            _meta.create_all(engine)

    def _rel(self, path: Path) -> str:
        rel = path.resolve().relative_to(self.root.resolve()).as_posix()
        if not rel.startswith("proposals/"):
            raise UsageError(f"{path}: not a shared file of this store")
        return rel

    def put(self, files: list[tuple[Path, bytes]], new: bool = False) -> None:
        """Write these files (their final local paths, their bytes) as rows in one transaction; with `new`,
        refuse when any of them exists already (another member made the same proposal)."""
        from sqlalchemy.exc import IntegrityError

        rows = [(self._rel(p), data) for p, data in files]
        try:
            with _reached(), self.engine.begin() as conn:
                for rel, data in rows:
                    if not new:
                        conn.execute(delete(files_table).where(files_table.c.path == rel))
                    conn.execute(files_table.insert().values(path=rel, sha256=hashlib.sha256(data).hexdigest(),
                                                             content=data))
        except IntegrityError:
            raise UsageError(f"{rows[0][0]}: already on the team's servers") from None

    def claim(self, path: Path, data: bytes) -> bool:
        """Take a new file's name for `data`; False when another member took that name first."""
        from sqlalchemy.exc import IntegrityError

        try:
            with _reached(), self.engine.begin() as conn:
                conn.execute(files_table.insert().values(path=self._rel(path), sha256=hashlib.sha256(data).hexdigest(),
                                                         content=data))
        except IntegrityError:
            return False
        return True

    def remove(self, folder: Path) -> None:
        """Remove every row under a folder (a proposal a forget removes)."""
        prefix = self._rel(folder).rstrip("/") + "/"
        with _reached(), self.engine.begin() as conn:
            conn.execute(delete(files_table).where(files_table.c.path.startswith(prefix, autoescape=True)))

    def pull(self) -> None:
        """Bring the cache in line with the rows: fetch what is new or changed, drop what is gone."""
        with _reached(), self.engine.connect() as conn:
            want = dict(conn.execute(select(files_table.c.path, files_table.c.sha256)).all())
        folder = self.root / "proposals"
        have = {p.relative_to(self.root).as_posix(): p for p in folder.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
        for rel, p in have.items():
            if rel not in want:
                p.unlink()
        fetch = [rel for rel, sha in want.items() if rel not in have or _sha(have[rel]) != sha]
        for rel in fetch:
            with _reached(), self.engine.connect() as conn:
                data = conn.execute(select(files_table.c.content).where(files_table.c.path == rel)).scalar_one()
            dest = (self.root / rel).resolve()
            if folder.resolve() not in dest.parents:
                raise UsageError(f"shared file {rel!r} escapes the store")
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        for d in sorted((p for p in folder.glob("prop-*") if p.is_dir()), reverse=True):
            if not any(r.startswith(f"proposals/{d.name}/") for r in want):
                shutil.rmtree(d, ignore_errors=True)
