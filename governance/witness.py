"""Signed checkpoints of the ledger head, and the witnesses that keep them outside the ledger.

After every append, whoever signed the entry also signs a checkpoint (sequence number,
head digest, root fingerprint, champion), as Certificate Transparency's signed tree heads
and sigstore's checkpoints do. Witnesses keep it outside the ledger database: the MLflow
registered model (a tag, beside the ``champion`` alias), every audit bundle, and any file
the policy names (``witnesses:``, one checkpoint a line). A ledger shorter than a
witness's checkpoint, or with another entry at that sequence number, has lost entries or
been replaced by an older copy, and fails verification. A witness that lags (a crash
between the append and the publication) is fine: the ledger may be ahead, never behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from governance.errors import UsageError, VerificationError
from governance.keys import Signer
from governance.ledger import Entry, champion, roots
from governance.schema import Checkpoint, RootDoc
from governance.signing import sign_envelope_by, statement, unverified_statement, verify_signers
from governance.trust import RULES, Root


class Witness(Protocol):
    name: str

    def publish(self, envelope: bytes) -> None: ...

    def latest(self) -> bytes | None: ...


def make_checkpoint(entries: list[Entry], signers: Sequence[Signer]) -> bytes:
    if not entries:
        raise UsageError("the ledger is empty: nothing to checkpoint")
    root1 = roots(entries)[0]
    cp = Checkpoint(seq=len(entries), head=entries[-1].digest, root=root1.fingerprint,
                    champion=champion(entries), created=round(time.time(), 3))
    body = statement({"ledger-head": cp.head}, "Checkpoint/v1", cp.model_dump())
    return sign_envelope_by(body, [(s.key, s.keyid) for s in signers])


def read_checkpoint(envelope: bytes, entries: list[Entry], where: str) -> Checkpoint:
    """Parse a checkpoint and check it against the ledger; raises VerificationError saying what is wrong."""
    try:
        cp = Checkpoint.model_validate(unverified_statement(envelope, where).get("predicate"))
    except ValidationError as exc:
        raise VerificationError(f"{where}: not a ledger checkpoint ({exc.errors()[0]['msg']})") from None
    if cp.seq > len(entries):
        raise VerificationError(f"{where} holds a signed checkpoint of ledger entry {cp.seq} "
                                f"(head {cp.head[:12]}), but the ledger has {len(entries)} entries: entries were "
                                "deleted or the ledger database replaced with an older copy")
    known = roots(entries)
    if not known or cp.root != known[0].fingerprint:
        raise VerificationError(f"{where}: its checkpoint is of another ledger (root {cp.root[:12]})")
    at = entries[cp.seq - 1]
    if at.digest != cp.head:
        raise VerificationError(f"{where}: ledger entry {cp.seq} is {at.digest[:12]}, but the witness signed "
                                f"{cp.head[:12]}: the ledger was rewritten from entry {cp.seq} or earlier")
    judges = [at.root] + ([Root(RootDoc.model_validate(at.predicate["root"]))] if at.predicate["action"] == "root"
                          else [])  # the root in force at that entry (and the one it made)
    signers = {kid: key for r in judges for kid, key in r.public_keys(*RULES["checkpoint"][0]).items()}
    verify_signers(envelope, signers, where, f"a root/approver/operator key of root v{judges[-1].version}")
    return cp


class FileWitness:
    """A file outside the store, one checkpoint envelope a line, appended."""

    def __init__(self, path: str) -> None:
        self.path = Path(path[7:] if path.startswith("file://") else path).expanduser()
        self.name = f"witness file {self.path}"

    def publish(self, envelope: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        with os.fdopen(fd, "ab") as fh:
            fh.write(envelope + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def latest(self) -> bytes | None:
        """The checkpoint with the highest sequence number (a torn last line is skipped)."""
        if not self.path.is_file():
            return None
        best, best_seq = None, 0
        for line in self.path.read_bytes().splitlines():
            try:
                seq = unverified_statement(line)["predicate"]["seq"]
            except (VerificationError, KeyError, TypeError):
                continue
            if isinstance(seq, int) and seq >= best_seq:
                best, best_seq = line, seq
        return best


def file_witnesses(paths: Sequence[str]) -> list[FileWitness]:
    for p in paths:
        if "://" in p and not p.startswith("file://"):
            raise UsageError(f"witness {p!r}: only file paths and file:// URLs are supported")
    return [FileWitness(p) for p in paths]
