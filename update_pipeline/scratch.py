"""Scratch folders for model copies: under ``cache/tmp/``, named after the process that owns them.

A copy a command makes while it works (the candidate a check judges, a version being restored, a
registry download) lives in ``scratch(store, label)``, removed when the block ends, whatever ends it:
a return, an exception, Ctrl-C, or SIGTERM / SIGHUP (turned into ``SystemExit(128 + signal)`` while a
scratch folder is open, so the cleanup runs; the exit code stays the one a shell expects). A kill -9
cannot be caught: the folder's name holds the owner's pid and host, and the next scratch folder opened
in the store (or ``weightgate gc``) removes the folders of processes that are gone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from governance.store import Store

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
NAME = re.compile(r"^p(\d+)\.([0-9a-f]{8})\.")
_SIGNALS = tuple(getattr(signal, s) for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s))


def root(store: Store) -> Path:
    return store.cache_dir / "tmp"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def owner(folder: Path) -> tuple[int, str] | None:
    """(pid, host digest) a scratch folder's name gives, or None for a name not made here."""
    m = NAME.match(folder.name)
    return (int(m.group(1)), m.group(2)) if m else None


def stale(folder: Path) -> bool:
    """A scratch folder whose owner, a process on this host, is gone (one of another host is never judged)."""
    who = owner(folder)
    return who is not None and who[1] == HOST and who[0] != os.getpid() and not alive(who[0])


def sweep(store: Store) -> list[Path]:
    """Remove the scratch folders of processes that are gone; returns them."""
    gone = [p for p in sorted(root(store).glob("p*")) if p.is_dir() and stale(p)]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def _unwind(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit in the main thread while the block runs (where they would have
    killed the process outright); a handler someone else installed is left alone."""
    mine = []
    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            if signal.getsignal(s) == signal.SIG_DFL:
                signal.signal(s, _unwind)
                mine.append(s)
    try:
        yield
    finally:
        for s in mine:
            signal.signal(s, signal.SIG_DFL)


@contextmanager
def scratch(store: Store, label: str) -> Iterator[Path]:
    """An empty folder in the store's cache, removed with everything in it when the block ends."""
    base = root(store)
    base.mkdir(parents=True, exist_ok=True)
    sweep(store)
    tag = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-")[:40] or "work"
    with _signals_unwind():
        path = Path(tempfile.mkdtemp(dir=base, prefix=f"p{os.getpid()}.{HOST}.{tag}."))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
