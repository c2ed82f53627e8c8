"""Proposals on disk: a proposer-signed manifest, the update data, and signed gate reports.

    proposals/ID/
      manifest.dsse.json   the manifest as an in-toto statement, signed by the proposer
      data.jsonl           the update data, byte for byte as proposed
      record_keys.json     the keys of the data's keyed hashes (governance.data.record_keys); not signed
      lineage.json         where the proposal lives in MLflow (run id, logged first); not signed
      reports/N.dsse.json  gate reports, signed by the gate runner; each recorded in the ledger (a report
                           entry with its sha256), and the newest recorded one is in force

A proposal directory is created under a temporary name and renamed into place, so a
crash never leaves half a proposal. Loading verifies the proposer's signature.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.data import keyed
from governance.errors import UsageError, VerificationError, WeightgateError
from governance.signing import sha256_hex, subject_digests, verify_signers
from governance.trust import RULES, Root

if TYPE_CHECKING:
    from governance.data import DataRecord
    from governance.shared import SharedFiles
    from governance.store import Store

_ID = re.compile(r"^prop-[0-9a-f]{10}$")


@dataclass(frozen=True)
class Proposal:
    id: str
    dir: Path
    manifest: dict[str, Any]
    manifest_digest: str
    proposer: str

    @property
    def data_path(self) -> Path:
        return self.dir / "data.jsonl"

    def keys(self) -> dict[str, Any]:
        return record_keys_of(self.dir)

    def lineage(self) -> dict[str, str]:
        p = self.dir / "lineage.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def report_paths(self) -> list[Path]:
        return _numbered(self.dir / "reports", _REPORT)


_REPORT = re.compile(r"^(\d{1,9})\.dsse\.json$")
_DECISION = re.compile(r"^(\d{1,9})-[a-z0-9][a-z0-9_.-]{0,63}\.dsse\.json$")


def _numbered(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """The numbered envelopes of a folder in order; anything else there is refused, not skipped."""
    if not folder.is_dir():
        return []
    paths = list(folder.glob("*.dsse.json"))
    for p in paths:
        if not pattern.match(p.name):
            raise VerificationError(f"{p}: not a file weightgate wrote here (unexpected name)")
    return sorted(paths, key=lambda p: int(pattern.match(p.name).group(1)))  # type: ignore[union-attr]


def _append_file(folder: Path, suffix: str, data: bytes, shared: SharedFiles | None = None) -> Path:
    """Write the next numbered envelope in `folder`; never overwrites one (on a team's servers, the name is
    claimed there first: members at once take different numbers)."""
    folder.mkdir(exist_ok=True)
    n = len(list(folder.glob("*.dsse.json"))) + 1
    while True:  # two writers at once: the one that loses the name takes the next number
        path = folder / f"{n}{suffix}.dsse.json"
        if shared is not None:
            if not shared.claim(path, data):
                n += 1
                continue
            path.write_bytes(data)
            return path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path


_KEY = re.compile(r"^[0-9a-f]{64}$")


def record_keys_of(pdir: Path) -> dict[str, Any]:
    """A proposal's record keys, finishing an interrupted redaction first; empty when missing, unreadable or
    not of the shape weightgate writes (the data then fails its check, it never crashes a reader)."""
    _settle(pdir)
    try:
        keys = json.loads((pdir / "record_keys.json").read_text())
    except (OSError, ValueError):
        return {}
    if not (isinstance(keys, dict) and set(keys) == {"file", "records"} and isinstance(keys["records"], list)
            and (keys["file"] is None or (isinstance(keys["file"], str) and _KEY.match(keys["file"])))
            and all(isinstance(k, str) and _KEY.match(k) for k in keys["records"])):
        return {}
    return keys


_PENDING = ("data.jsonl", "record_keys.json")


def _settle(pdir: Path) -> None:
    """A redaction writes both new files beside the old ones, then a marker, then renames both: a kill
    before the marker leaves the old pair (stray new files are removed), after it the next reader
    finishes the renames. Either way data and keys stay a pair."""
    marker = pdir / ".redact.ready"
    for name in _PENDING:
        new = pdir / f".{name}.new"
        if new.exists():
            if marker.exists():
                new.replace(pdir / name)
            else:
                new.unlink()
    marker.unlink(missing_ok=True)


def proposal_id(envelope: bytes) -> str:
    return "prop-" + sha256_hex(envelope)[:10]


class ProposalStore:
    def __init__(self, root: Path, trust: Root, forgotten: set[str] | frozenset[str] = frozenset(),
                 recorded: dict[str, list[tuple[int, str, int]]] | None = None,
                 shared: SharedFiles | None = None) -> None:
        self.root = root
        self.shared = shared  # a team's servers hold the files; `root` is this member's cache of them
        self.trust = trust
        self.forgotten = frozenset(forgotten)  # keyed record hashes signed forget entries removed
        self.recorded = recorded or {}  # proposal id -> reports the ledger recorded (number, sha256, entry)

    @classmethod
    def of(cls, store: Store, entries: list[Any], root: Any = None) -> ProposalStore:
        """The store's proposals as the verified ledger `entries` see them: judged by the root in force (or
        `root`), with the forgotten records and the recorded reports; on a team's servers, the cache
        brought in line with them first."""
        from governance.history import forgotten, recorded_reports
        from governance.ledger import current_root

        shared = store.shared_files()
        if shared is not None:
            shared.pull()
        return cls(store.proposals_dir, root or current_root(entries), forgotten(entries), recorded_reports(entries),
                   shared)

    def create(self, envelope: bytes, data_file: Path, lineage: dict[str, str], keys: dict[str, Any]) -> str:
        """Write the proposal (with where its MLflow run is) under a temporary name and rename it into place:
        a kill leaves the whole proposal or none of it."""
        pid = proposal_id(envelope)
        final = self.root / pid
        if final.exists():
            raise UsageError(f"proposal {pid} already exists")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            (tmp / "reports").mkdir()
            (tmp / "manifest.dsse.json").write_bytes(envelope)
            shutil.copyfile(data_file, tmp / "data.jsonl")
            (tmp / "lineage.json").write_text(json.dumps(lineage, indent=2) + "\n")
            (tmp / "record_keys.json").write_text(json.dumps(keys) + "\n")
            if self.shared is not None:  # the team's copy first: a kill after it leaves a cache to fill
                self.shared.put([(final / f.name, f.read_bytes()) for f in tmp.iterdir() if f.is_file()], new=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return pid

    def resolve(self, ref: str) -> Path:
        """A proposal id or a unique prefix of one."""
        if _ID.match(ref) and (self.root / ref).is_dir():
            return self.root / ref
        hits = [p for p in self.root.glob("prop-*") if p.name.startswith(ref)] if ref else []
        if len(hits) == 1:
            return hits[0]
        raise UsageError(f"unknown proposal {ref!r}" if not hits else f"ambiguous proposal prefix {ref!r}")

    def load(self, ref: str, redacted_ok: bool = False) -> Proposal:
        """Verify and load a proposal. Its data must be byte for byte what the proposer signed, or, with
        `redacted_ok` (for reading a promoted proposal a forget redacted), exactly the signed records
        without those signed forget entries removed (`self.forgotten`)."""
        pdir = self.resolve(ref)
        where = f"{pdir.name}/manifest.dsse.json"
        try:
            envelope = (pdir / "manifest.dsse.json").read_bytes()
        except FileNotFoundError:
            raise VerificationError(f"{where} is missing: not a proposal (a stray file under its name?)") from None
        signed, body = verify_signers(envelope, self.trust.public_keys(*RULES["propose"][0]), where=where)
        proposer = self.trust.judge("propose", signed, where).signers[0]
        manifest = body["predicate"]
        keys = record_keys_of(pdir)
        data_mac = subject_digests(body).get("data.jsonl")
        if not keys.get("file") or data_mac != keyed(keys["file"], (pdir / "data.jsonl").read_bytes()):
            if not redacted_ok:
                raise VerificationError(f"{pdir.name}/data.jsonl is not the data its proposer signed")
            self._check_redacted(pdir, manifest, self.forgotten)
        return Proposal(pdir.name, pdir, manifest, sha256_hex(envelope), proposer)

    @staticmethod
    def _check_redacted(pdir: Path, manifest: dict[str, Any], forgotten: set[str]) -> None:
        """Data changed since signing: allowed only as the signed records minus ones a signed forget removed."""
        from governance.data import load_jsonl, record_macs

        want = [h for h in manifest["data"]["record_macs"] if h not in forgotten]
        try:
            have = record_macs(load_jsonl(pdir / "data.jsonl", allow_empty=True), record_keys_of(pdir))
        except (WeightgateError, ValueError, TypeError):
            have = None
        if have != want or len(want) == len(manifest["data"]["record_macs"]):
            raise VerificationError(f"{pdir.name}/data.jsonl does not match its signed digest")

    def redact(self, pid: str, drop: Callable[[DataRecord], bool]) -> int:
        """Drop the records `drop` picks from a proposal's data (atomically); returns how many went."""
        from governance.data import load_jsonl

        pdir = self.root / pid
        keys = record_keys_of(pdir)  # settles an interrupted redaction first
        records = load_jsonl(pdir / "data.jsonl", allow_empty=True)
        if len(keys.get("records", [])) != len(records):
            raise VerificationError(f"{pid}/record_keys.json does not pair with its data.jsonl")
        pairs = [(r, k) for r, k in zip(records, keys["records"], strict=True) if not drop(r)]
        if len(pairs) == len(records):
            if self.shared is not None:  # a kill may have come between this cache and the team's copy
                self.shared.put([(pdir / n, (pdir / n).read_bytes()) for n in _PENDING])
            return 0
        (pdir / ".record_keys.json.new").write_text(json.dumps({"file": None, "records": [k for _, k in pairs]}) + "\n")
        (pdir / ".data.jsonl.new").write_bytes(
            b"".join(json.dumps(r.to_json(), sort_keys=True).encode() + b"\n" for r, _ in pairs))
        (pdir / ".redact.ready").touch()
        _settle(pdir)
        if self.shared is not None:
            self.shared.put([(pdir / n, (pdir / n).read_bytes()) for n in _PENDING])
        return len(records) - len(pairs)

    def add_report(self, pid: str, envelope: bytes) -> Path:
        return _append_file(self.root / pid / "reports", "", envelope, self.shared)

    def latest_report(self, proposal: Proposal) -> tuple[bytes, dict[str, Any]] | None:
        """The newest report the ledger recorded for the proposal (envelope bytes, content), verified; None if
        never checked. A report file the ledger did not record (a check killed before it) is not in force."""
        proposal.report_paths()  # a file weightgate did not write there is refused, not skipped
        recorded = self.recorded.get(proposal.id)
        if not recorded:
            return None
        number, digest, seq = recorded[-1]
        path = proposal.dir / "reports" / f"{number}.dsse.json"
        where = f"{proposal.id}/reports/{path.name}"
        if not path.is_file():
            raise VerificationError(f"{where}: the report ledger entry {seq} recorded is missing")
        envelope = path.read_bytes()
        if sha256_hex(envelope) != digest:
            raise VerificationError(f"{where}: not the report ledger entry {seq} recorded")
        _, body = verify_signers(envelope, self.trust.public_keys("gate"), where=where)
        if subject_digests(body).get("manifest.dsse.json") != proposal.manifest_digest:
            raise VerificationError(f"{where} reports on another proposal")
        report = body["predicate"]
        if not (isinstance(report, dict) and report.get("verdict") in ("pass", "fail")
                and isinstance(report.get("failed_gates"), list) and isinstance(report.get("policy"), dict)
                and isinstance(report["policy"].get("digest"), str)):
            raise VerificationError(f"{where}: not a gate report (fields missing)")
        return envelope, report

    def add_decision(self, pid: str, by: str, envelope: bytes) -> Path:
        return _append_file(self.root / pid / "decisions", f"-{by}", envelope, self.shared)

    def decisions(self, proposal: Proposal) -> list[tuple[str, bytes]]:
        paths = _numbered(proposal.dir / "decisions", _DECISION)
        return [(f"{proposal.id}/decisions/{p.name}", p.read_bytes()) for p in paths]
