"""sha256 of many files at once: one thread per core, largest files first.

hashlib releases the GIL on large buffers, so threads hash in parallel; files are mapped,
not copied, into memory.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_CHUNK = 64 << 20


def sha256_file(path: Path) -> str:
    """sha256 of a file, read through mmap (no copy out of the page cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return h.hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                for i in range(0, len(mm), _CHUNK):
                    h.update(view[i:i + _CHUNK])
            finally:
                view.release()
    return h.hexdigest()


def sha256_files(paths: Iterable[Path], workers: int | None = None) -> dict[Path, str]:
    """path -> sha256 hex, hashed in parallel."""
    todo = sorted(set(paths), key=lambda p: p.stat().st_size, reverse=True)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    if workers == 1:
        return {p: sha256_file(p) for p in todo}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(todo, pool.map(sha256_file, todo), strict=True))
