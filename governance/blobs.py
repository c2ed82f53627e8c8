"""Content-addressed blob store: each blob is named by the sha256 of its bytes.

With a `remote` (a team's artifact store, governance.shared.BlobRemote) the folder is a cache: every blob
stored is also pushed there, and one missing here is fetched from there on first read, through the same
verifying copy as any blob stored."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from governance.errors import InputError, UsageError, VerificationError

if TYPE_CHECKING:
    from governance.shared import BlobRemote

_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 8 << 20


class BlobStore:
    def __init__(self, root: Path, remote: BlobRemote | None = None) -> None:
        self.root = root
        self.remote = remote
        self._pending: list[tuple[Path, str]] | None = None  # pushes held back by batch()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Blobs stored inside the block are pushed to the remote when it ends, several at a time (one
        request each: a version's tensors are many blobs). A block that raises pushes nothing: no ledger
        entry names those blobs, and they stay cached here."""
        if self.remote is None or self._pending is not None:
            yield
            return
        self._pending = []
        try:
            yield
            self.remote.push_all(self._pending)
        finally:
            self._pending = None

    def _push(self, path: Path, digest: str) -> None:
        if self.remote is None:
            return
        if self._pending is not None:
            self._pending.append((path, digest))
        else:
            self.remote.push(path, digest)

    def path(self, digest: str) -> Path:
        if not _HEX.match(digest):
            raise UsageError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file() or (self.remote is not None and self.remote.exists(digest))

    def _local(self, digest: str) -> Path:
        """The blob's path here, fetched from the remote first when only it has the blob."""
        p = self.path(digest)
        if p.is_file() or self.remote is None:
            return p
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".fetch-") as tmp:
            got = self.remote.fetch(digest, Path(tmp))
            if got is not None:
                try:
                    self.put_file(got, digest, push=False)
                except InputError:
                    raise VerificationError(f"blob {digest[:12]} on {self.remote.uri} is corrupt: its bytes do not "
                                            "hash to its name") from None
        return p

    def delete(self, digest: str) -> bool:
        """Remove the blob here and on the remote; whether it was here or there."""
        p, found = self.path(digest), False
        if p.is_file():
            p.unlink()
            found = True
        if self.remote is not None and self.remote.exists(digest):
            self.remote.delete(digest)
            found = True
        return found

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

    def put_file(self, src: Path, digest: str, push: bool = True) -> Path:
        """Copy `src` in under `digest`, hashing while copying; refuse if the bytes differ."""
        dest = self.path(digest)
        if dest.is_file():
            if push:
                self._push(dest, digest)
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
        if push:
            self._push(dest, digest)
        return dest

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256 (the blob's name)."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.path(digest).is_file():
            self._store(self.path(digest), lambda out: out.write(data))
        self._push(self.path(digest), digest)
        return digest

    def read(self, digest: str, verify: bool = True) -> bytes:
        """A blob's bytes, checked against its name unless the caller checks the result itself."""
        try:
            data = self._local(digest).read_bytes()
        except FileNotFoundError:
            raise VerificationError(f"blob {digest[:12]} is missing from {self.root}") from None
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise VerificationError(f"blob {digest[:12]} is corrupt: its bytes hash to "
                                    f"{hashlib.sha256(data).hexdigest()[:12]}")
        return data

    def verify(self, digest: str) -> Path:
        """The blob's path, after checking its bytes still hash to its name."""
        p = self._local(digest)
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
