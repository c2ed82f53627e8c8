"""The append-only, hash-chained ledger of model versions.

Each entry is a DSSE envelope over an in-toto statement whose predicate names the
previous entry's digest; the row keeps only (seq, digest, envelope), all checked on
verify. Entries are appended inside one transaction under an exclusive file lock, so
concurrent writers are serialized and a kill leaves the old head or the new one.
The database URL is configurable (SQLite in the store by default).

Actions: ``genesis`` (the first base, version 0), ``promote`` (a new version),
``rollback`` (the champion moves to an earlier version), ``forget`` (update data
re-encrypted without some records). Versions only rise; nothing is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, create_engine, select
from sqlalchemy.engine import Engine

from governance.errors import UsageError, VerificationError
from governance.keys import GATE_ROLE, KeyInfo
from governance.signing import sha256_hex, sign_envelope, statement, verify_envelope

_meta = MetaData()
entries_table = Table(
    "ledger_entries", _meta,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("envelope", LargeBinary, nullable=False),
)
data_keys_table = Table(  # mutable on purpose: deleting a key crypto-shreds its data
    "data_keys", _meta,
    Column("key_id", String(64), primary_key=True),
    Column("key", LargeBinary, nullable=False),
)
ACTIONS = ("genesis", "promote", "rollback", "forget")


@dataclass(frozen=True)
class Entry:
    seq: int
    digest: str
    envelope: bytes
    body: dict[str, Any]

    @property
    def predicate(self) -> dict[str, Any]:
        return self.body["predicate"]


class Ledger:
    def __init__(self, url: str, lock_path: Path) -> None:
        self.url = url
        self.lock_path = lock_path
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.url)
            _meta.create_all(self._engine)
        return self._engine

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock serializing every writer of this store."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def rows(self) -> list[tuple[Any, Any, Any]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(entries_table).order_by(entries_table.c.seq))]

    def entries(self, keys: list[KeyInfo]) -> list[Entry]:
        """Every entry, verified: rows match their envelopes, the chain links, signatures hold."""
        rows = self.rows()
        for i, (seq, digest, envelope) in enumerate(rows, start=1):
            if seq != i:
                raise VerificationError(f"ledger entry {i}: sequence number is {seq}, expected {i}")
            if sha256_hex(bytes(envelope)) != digest:
                raise VerificationError(f"ledger entry {i}: stored digest does not match the envelope's bytes")
        envelopes = [bytes(r[2]) for r in rows]
        bodies = walk_chain(envelopes, keys)
        return [Entry(i, r[1], env, body) for i, (r, env, body) in enumerate(zip(rows, envelopes, bodies,
                                                                                  strict=True), start=1)]

    def append(self, entries: list[Entry], predicate: dict[str, Any], subjects: Mapping[str, str],
               key: Any, keyid: str) -> Entry:
        """Append after the verified `entries`; refuses if someone else appended meanwhile."""
        seq = len(entries) + 1
        pred = {**predicate, "seq": seq, "prev": entries[-1].digest if entries else None,
                "created": round(time.time(), 3)}
        envelope = sign_envelope(statement(subjects, "LedgerEntry/v1", pred), key, keyid)
        digest = sha256_hex(envelope)
        with self.engine.begin() as conn:
            head = conn.execute(select(entries_table.c.seq).order_by(entries_table.c.seq.desc()).limit(1)).scalar()
            if (head or 0) != len(entries):
                raise UsageError("the ledger changed while this entry was prepared; try again")
            conn.execute(entries_table.insert().values(seq=seq, digest=digest, envelope=envelope))
        _, body = verify_envelope(envelope, {keyid: key.public_key()})
        return Entry(seq, digest, envelope, body)

    # -- data keys (crypto-shredding) ---------------------------------------------------------------
    def put_data_key(self, key_id: str, key: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(data_keys_table.insert().values(key_id=key_id, key=key))

    def data_key(self, key_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(data_keys_table.c.key).where(data_keys_table.c.key_id == key_id)).first()
        return bytes(row[0]) if row else None

    def destroy_data_key(self, key_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(data_keys_table.delete().where(data_keys_table.c.key_id == key_id))


def walk_chain(envelopes: list[bytes], keys: list[KeyInfo]) -> list[dict[str, Any]]:
    """Verify a chain of ledger envelopes signed by gate keys; returns their statements."""
    gate = {k.keyid: k.public() for k in keys if k.role == GATE_ROLE}
    prev, out = None, []
    for seq, env in enumerate(envelopes, start=1):
        _, body = verify_envelope(env, gate, where=f"ledger entry {seq}")
        pred = body["predicate"]
        if pred.get("seq") != seq or pred.get("prev") != prev:
            raise VerificationError(f"ledger entry {seq}: chain broken (seq or previous digest does not match)")
        if pred.get("action") not in ACTIONS:
            raise VerificationError(f"ledger entry {seq}: unknown action {pred.get('action')!r}")
        out.append(body)
        prev = sha256_hex(env)
    return out


def champion(entries: list[Entry]) -> int | None:
    return entries[-1].predicate["champion"] if entries else None


def versions(entries: list[Entry]) -> dict[int, Entry]:
    """version -> the entry that created it (genesis or promote)."""
    return {e.predicate["version"]: e for e in entries if e.predicate["action"] in ("genesis", "promote")}


def chain(entries: list[Entry], version: int) -> list[dict[str, Any]]:
    """The weights manifests from `version`'s keyframe up to `version`, oldest first."""
    made = versions(entries)
    if version not in made:
        raise UsageError(f"unknown ledger version {version}; versions: {', '.join(map(str, sorted(made)))}")
    out = []
    v: int | None = version
    while v is not None:
        weights = made[v].predicate["weights"]
        out.append(weights)
        if weights["depth"] == 0:
            break
        v = made[v].predicate.get("parent")
    return out[::-1]
