"""sha256 of many files at once: one thread per core, largest files first.

hashlib and file reads release the GIL on large buffers, so threads hash in parallel.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_BUF = 8 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(_BUF)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def sha256_files(paths: Iterable[Path], workers: int | None = None) -> dict[Path, str]:
    """path -> sha256 hex, hashed in parallel."""
    todo = sorted(set(paths), key=lambda p: p.stat().st_size, reverse=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    if workers == 1:
        return {p: sha256_file(p) for p in todo}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(todo, pool.map(sha256_file, todo), strict=True))
