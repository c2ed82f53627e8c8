"""What a store reaches: its ledger database, its MLflow tracking store, its blobs and its keys.

``weightgate doctor`` prints one line a part and exits 1 when any part is out of reach or does not
verify: the first thing to run on a member's machine after ``weightgate init --ledger-url ... --tracking-uri ...``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from governance.errors import UsageError
from governance.store import Store

_SCHEMES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Finding:
    part: str
    where: str
    ok: bool
    detail: str


def _safe(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all
        return url


def check_ledger_url(url: str) -> None:
    """Refuse (exit 2) a ledger URL of another engine, or one whose database does not answer."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise UsageError(f"--ledger-url {url!r}: not a database URL (postgresql+psycopg://USER@HOST:PORT/DB)") from None
    if backend not in _SCHEMES:
        raise UsageError(f"--ledger-url {_safe(url)}: {backend} is not supported (PostgreSQL or SQLite)")
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        raise UsageError(f"--ledger-url {_safe(url)}: cannot connect ({str(exc).splitlines()[0][:160]})") from None


def _ledger(store: Store) -> list[Finding]:
    from governance.errors import WeightgateError
    from governance.ledger import Ledger, pinned_anchor

    where = _safe(store.ledger_url)
    try:
        entries = Ledger.of(store).entries()
    except WeightgateError as exc:
        return [Finding("ledger", where, False, str(exc))]
    head = f"{len(entries)} entries, head {entries[-1].digest[:12]}" if entries else "empty"
    found = [Finding("ledger", where, True, f"reachable, verifies: {head}")]
    pin = pinned_anchor(store.config().get("root_fingerprint"))
    if store.team and entries:  # unpinned, a member would trust whatever root the database's first row names
        found.append(Finding("trust root", pin or "-", pin is not None, "pinned" if pin else
                             "NOT pinned: init --root-fingerprint HEX (or WEIGHTGATE_ROOT_FINGERPRINT)"))
    return found


def _tracking(store: Store, override: str | None) -> Finding:
    uri = store.tracking_uri(override)
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
        models = client.search_registered_models(filter_string=f"name = '{store.model_name}'")
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the finding
        return Finding("tracking", uri, False, f"unreachable ({str(exc).splitlines()[0][:160]})")
    return Finding("tracking", uri, True, f"reachable; model {store.model_name!r} "
                   f"{'registered' if models else 'not registered yet'}")


def _writable(part: str, path: os.PathLike[str]) -> Finding:
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Finding(part, str(path), False, f"not writable ({exc.strerror})")
    return Finding(part, str(path), True, "writable")


def _remote_blobs(store: Store) -> Finding:
    uri = store.config().get("blobs")
    try:
        store.blobs().remote.repo.list_artifacts("")  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the finding
        return Finding("team blobs", uri, False, f"unreachable ({str(exc).splitlines()[0][:160]})")
    return Finding("team blobs", uri, True, "reachable")


def diagnose(store: Store, tracking_uri: str | None = None) -> list[Finding]:
    from governance.keys import KeyRing

    store.config()
    ring = KeyRing(store.keys_dir)
    keys = ring.own or ring.dir
    found = [*_ledger(store), _tracking(store, tracking_uri)]
    if store.config().get("blobs"):
        found.append(_remote_blobs(store))
    return found + [_writable("blobs" if not store.team else "blob cache", store.blobs_dir),
                    _writable("cache", store.cache_dir), _writable("keys", keys)]
