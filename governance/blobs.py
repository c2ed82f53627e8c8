"""Content-addressed blob store: each blob is named by the sha256 of its bytes."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from governance.errors import InputError, UsageError, VerificationError

_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 8 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if not _HEX.match(digest):
            raise UsageError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def _store(self, dest: Path, write: Callable[[BinaryIO], None]) -> None:
        """Write through a temporary file, fsync, make read-only, rename into place."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_file(self, src: Path, digest: str) -> Path:
        """Copy `src` in under `digest`, hashing while copying; refuse if the bytes differ."""
        dest = self.path(digest)
        if dest.is_file():
            return dest

        def copy(out: BinaryIO) -> None:
            h = hashlib.sha256()
            with open(src, "rb") as fin:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != digest:
                raise InputError(f"{src}: changed while it was being stored (sha256 differs)")

        self._store(dest, copy)
        return dest

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256 (the blob's name)."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.path(digest).is_file():
            self._store(self.path(digest), lambda out: out.write(data))
        return digest

    def read(self, digest: str, verify: bool = True) -> bytes:
        """A blob's bytes, checked against its name unless the caller checks the result itself."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise VerificationError(f"blob {digest[:12]} is missing from {self.root}") from None
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise VerificationError(f"blob {digest[:12]} is corrupt: its bytes hash to "
                                    f"{hashlib.sha256(data).hexdigest()[:12]}")
        return data

    def verify(self, digest: str) -> Path:
        """The blob's path, after checking its bytes still hash to its name."""
        p = self.path(digest)
        if not p.is_file():
            raise VerificationError(f"blob {digest[:12]} is missing from {self.root}")
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        if h.hexdigest() != digest:
            raise VerificationError(f"blob {digest[:12]} is corrupt: its bytes hash to {h.hexdigest()[:12]}")
        return p

    def materialize(self, files: dict[str, str], dest: Path) -> Path:
        """Lay out verified blobs as named files (name -> digest) under `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        for name, digest in files.items():
            target = (dest / name).resolve()
            if dest.resolve() not in target.parents:
                raise VerificationError(f"file name {name!r} escapes {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.verify(digest), target)
        return dest
