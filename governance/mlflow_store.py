"""The embedded MLflow tracking store: SQLite in the store, artifacts in the store.

MLflow gives a SQLite database it creates the default artifact root ``./mlruns`` of the
folder the command ran in, and records it as the location of its Default experiment (id 0):
anything later logged there (a user's ``mlflow.start_run()`` against the store) would land in
whatever folder that first command ran in. weightgate creates the database itself, with the
store's ``mlartifacts/`` as the default artifact root, before MLflow's client first opens it.
"""

from __future__ import annotations

import os
from pathlib import Path


def sqlite_path(uri: str) -> Path | None:
    """The database file a ``sqlite:///`` URI names (a relative one from the current folder), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(os.path.abspath(raw)) if raw and raw != ":memory:" else None


def same_uri(a: str, b: str) -> bool:
    """Whether two tracking URIs name the same tracking store (a SQLite file however it is written)."""
    pa, pb = sqlite_path(a), sqlite_path(b)
    if pa is not None or pb is not None:
        return pa is not None and pb is not None and os.path.realpath(pa) == os.path.realpath(pb)
    return a.rstrip("/") == b.rstrip("/")


def prepare(uri: str, artifacts_dir: Path) -> None:
    """Create the SQLite database `uri` names, when it does not exist yet, with `artifacts_dir` as MLflow's
    default artifact root (so its Default experiment keeps its artifacts there)."""
    path = sqlite_path(uri)
    if path is None or path.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    SqlAlchemyStore(uri, artifacts_dir.resolve().as_uri()).engine.dispose()
