"""The append-only, hash-chained ledger: trust roots, policies, versions, rollbacks, forgets.

Each entry is a DSSE envelope over an in-toto statement whose predicate names the
previous entry's digest; the row keeps only (seq, digest, envelope), all checked on
verify. Every entry is signed by whoever did it and judged against the trust root in
force at its sequence number (governance.trust): the chain carries its own trust, and a
pinned fingerprint of a root version anchors it. Entries are appended inside one
transaction under an exclusive lock (a file lock beside an embedded SQLite ledger, a row
lock held in a transaction on a database server), so concurrent writers are serialized
and a kill leaves the old head or the new one; the sequence number is the primary key, so
even a writer that skips the lock cannot fork the chain.

Actions: ``root`` (a trust root version), ``policy`` (the policy in force), ``genesis``
(the first base, version 0), ``promote`` (a new version), ``rollback`` (the champion
moves to an earlier version), ``forget`` (update data re-encrypted without some
records, the versions trained on them tombstoned), ``forget_done`` (its shredding
finished), ``revert`` (a signed request to unlearn one update). Versions only rise; no
entry is ever deleted.
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
from governance.keys import Signer
from governance.schema import RootDoc, parse_entry
from governance.signing import sha256_hex, sign_envelope_by, statement, unverified_statement, verify_signers
from governance.trust import Authorized, Root, check_anchor

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
lock_table = Table(  # one row, locked FOR UPDATE by the writer in progress (database servers)
    "ledger_lock", _meta,
    Column("id", Integer, primary_key=True, autoincrement=False),
)
checkpoints_table = Table(  # a copy of the newest signed checkpoints, for export; trusted for nothing
    "checkpoints", _meta,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("envelope", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class Entry:
    seq: int
    digest: str
    envelope: bytes
    body: dict[str, Any]
    root: Root  # the trust root this entry was judged against (for a root entry: the one before it)
    signed: Authorized

    @property
    def predicate(self) -> dict[str, Any]:
        return self.body["predicate"]


def roots(entries: list[Entry]) -> list[Root]:
    """Every trust root version, oldest first."""
    return [Root(RootDoc.model_validate(e.predicate["root"])) for e in entries if e.predicate["action"] == "root"]


def current_root(entries: list[Entry]) -> Root:
    found = roots(entries)
    if not found:
        raise UsageError("this store has no trust root: run 'weightgate trust init' first")
    return found[-1]


def pinned_anchor(config_anchor: str | None) -> str | None:
    """WEIGHTGATE_ROOT_FINGERPRINT (pinned outside the store), else the store's own record of it."""
    import os

    return os.environ.get("WEIGHTGATE_ROOT_FINGERPRINT") or config_anchor


class Ledger:
    def __init__(self, url: str, lock_path: Path, anchor: str | None = None) -> None:
        self.url = url
        self.lock_path = lock_path
        self.anchor = anchor
        self._engine: Engine | None = None

    @classmethod
    def of(cls, store: Any, anchor: str | None = None) -> Ledger:
        """The store's ledger, anchored on `anchor`, else on the pinned or recorded root fingerprint."""
        return cls(store.ledger_url, store.lock_path,
                   anchor or pinned_anchor(store.config().get("root_fingerprint")))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # on a server, a pooled connection may have been closed under us (a restart, a failover)
            self._engine = create_engine(self.url, pool_pre_ping=not self.url.startswith("sqlite"))
            if self._engine.dialect.name == "sqlite":  # a destroyed data key is overwritten, not left in a free page
                from sqlalchemy import event

                event.listen(self._engine, "connect", lambda conn, _: conn.execute("PRAGMA secure_delete = ON"))
            _meta.create_all(self._engine)
            if self._engine.dialect.name != "sqlite":  # a team's proposal files: made with the ledger's tables
                from governance.shared import files_table

                files_table.create(self._engine, checkfirst=True)
        return self._engine

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock serializing every writer of this ledger: on a database server, a transaction
        holding the lock row (released by a commit, a rollback or the death of its connection); beside an
        embedded SQLite file, a file lock."""
        if self.engine.dialect.name != "sqlite":
            from governance.shared import row_lock

            with row_lock(self.engine, lock_table):
                yield
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def rows(self) -> list[tuple[int, str, bytes]]:
        """Every row, with its types checked (an edited database may hold anything)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect() as conn:
                raw = [tuple(r) for r in conn.execute(select(entries_table).order_by(entries_table.c.seq))]
        except SQLAlchemyError as exc:
            from sqlalchemy.engine import make_url

            where = make_url(self.url).render_as_string(hide_password=True)
            raise VerificationError(f"ledger database {where}: unreadable ({str(exc).splitlines()[0]})") from None
        for i, (seq, digest, envelope) in enumerate(raw, start=1):
            if not isinstance(seq, int) or not isinstance(digest, str) or not isinstance(envelope, bytes):
                raise VerificationError(f"ledger entry {i}: a column holds the wrong type")
        return raw  # type: ignore[return-value]

    def entries(self) -> list[Entry]:
        """Every entry, verified: rows match their envelopes, the chain links, each entry is signed by
        keys its root allows, and (when one is pinned) the chain holds the pinned root."""
        rows = self.rows()
        for i, (seq, digest, envelope) in enumerate(rows, start=1):
            if seq != i:
                raise VerificationError(f"ledger entry {i}: sequence number is {seq}, expected {i}")
            if sha256_hex(envelope) != digest:
                raise VerificationError(f"ledger entry {i}: stored digest does not match the envelope's bytes")
        entries = walk_chain([r[2] for r in rows])
        if self.anchor and entries:
            check_anchor(roots(entries), self.anchor, "ledger")
        return entries

    def root(self) -> Root:
        return current_root(self.entries())

    def append(self, entries: list[Entry], predicate: dict[str, Any], subjects: Mapping[str, str],
               signers: list[Signer]) -> Entry:
        """Append after the verified `entries`, signed by `signers`; refuses if someone else appended
        meanwhile, or if the signers may not do this action under the root in force."""
        seq = len(entries) + 1
        pred = {**predicate, "seq": seq, "prev": entries[-1].digest if entries else None,
                "created": round(time.time(), 3)}
        parse_entry(pred, f"new ledger entry {seq}")
        envelope = sign_envelope_by(statement(subjects, "LedgerEntry/v1", pred), [(s.key, s.keyid) for s in signers])
        entry = walk_chain([envelope], entries)[0]  # judged exactly as a verifier will judge it
        from sqlalchemy.exc import IntegrityError

        changed = UsageError("the ledger changed while this entry was prepared; try again")
        try:
            with self.engine.begin() as conn:
                head = conn.execute(select(entries_table.c.seq).order_by(entries_table.c.seq.desc()).limit(1)).scalar()
                if (head or 0) != len(entries):
                    raise changed
                conn.execute(entries_table.insert().values(seq=seq, digest=entry.digest, envelope=envelope))
        except IntegrityError:  # another writer took this sequence number first
            raise changed from None
        return entry

    # -- checkpoints (copies; witnesses hold the ones that count) -----------------------------------
    def save_checkpoint(self, seq: int, envelope: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(checkpoints_table.delete().where(checkpoints_table.c.seq == seq))
            conn.execute(checkpoints_table.insert().values(seq=seq, envelope=envelope))

    def checkpoint(self, seq: int) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(checkpoints_table.c.envelope).where(checkpoints_table.c.seq == seq)).first()
        return row[0] if row and isinstance(row[0], bytes) else None

    # -- data keys (crypto-shredding) ---------------------------------------------------------------
    def put_data_key(self, key_id: str, key: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(data_keys_table.insert().values(key_id=key_id, key=key))

    def data_key(self, key_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(data_keys_table.c.key).where(data_keys_table.c.key_id == key_id)).first()
        return bytes(row[0]) if row else None

    def destroy_data_key(self, key_id: str) -> None:
        """Delete a data key; on a database server, `compact` afterwards (outside the lock) rewrites the
        tables so that no dead row keeps its bytes."""
        with self.engine.begin() as conn:
            conn.execute(data_keys_table.delete().where(data_keys_table.c.key_id == key_id))

    def compact(self, *tables: str) -> None:
        """Rewrite these tables on a database server so that no dead row keeps deleted bytes (SQLite
        overwrites deleted rows itself: secure_delete). Not under `lock`: see governance.shared.vacuum."""
        if self.engine.dialect.name == "postgresql":
            from governance.shared import vacuum

            vacuum(self.engine, tables)


def walk_chain(envelopes: list[bytes], before: list[Entry] | None = None) -> list[Entry]:
    """Verify ledger envelopes in order (continuing after the verified `before`): the chain links and
    each entry is signed by keys its root in force allows. A root entry must satisfy the root
    threshold of the version before it and of itself (version 1: of itself)."""
    out: list[Entry] = []
    prior = list(before or [])
    root = current_root(prior) if any(e.predicate["action"] == "root" for e in prior) else None
    prev = prior[-1].digest if prior else None
    for seq, env in enumerate(envelopes, start=len(prior) + 1):
        where = f"ledger entry {seq}"
        pred = unverified_statement(env, where).get("predicate")
        model = parse_entry(pred, where)
        if model.seq != seq or model.prev != prev:
            raise VerificationError(f"{where}: chain broken (seq or previous digest does not match)")
        if pred["action"] == "root":
            new = Root(RootDoc.model_validate(pred["root"]))
            expected = 1 if root is None else root.version + 1
            if new.version != expected:
                raise VerificationError(f"{where}: root version {new.version}, expected {expected}")
            judges = [new] if root is None else [root, new]
            keys = {k: v for r in judges for k, v in r.public_keys().items()}
            signed, body = verify_signers(env, keys, where)
            auth = [r.judge("root", signed, f"{where} (root v{new.version} by root v{r.version})") for r in judges]
            out.append(Entry(seq, sha256_hex(env), env, body, judges[0], auth[0]))
            root = new
        else:
            if root is None:
                raise VerificationError(f"{where}: {pred['action']} before any trust root")
            signed, body = verify_signers(env, root.public_keys(), where, f"a key of root v{root.version}")
            out.append(Entry(seq, sha256_hex(env), env, body, root, root.judge(pred["action"], signed, where)))
        prev = out[-1].digest
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
    from governance.history import tombstones

    dead = tombstones(entries)
    if version in dead:
        raise UsageError(f"ledger:{version} was trained on records forgotten by ledger entry {dead[version]}: "
                         "it is tombstoned and can never be restored or served")
    out = []
    v: int | None = version
    while v is not None:
        weights = made[v].predicate["weights"]
        out.append(weights)
        if weights["depth"] == 0:
            break
        v = made[v].predicate.get("parent")
    return out[::-1]
