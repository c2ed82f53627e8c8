"""Verifying the whole store: the ledger chain, every signature, every blob it names."""

from __future__ import annotations

from typing import Any

from governance import approvals as decisions
from governance.blobs import BlobStore
from governance.errors import VerificationError
from governance.keys import GATE_ROLE, KeyRing
from governance.ledger import Ledger, champion
from governance.signing import sha256_hex, verify_envelope
from governance.store import Store
from governance.tensorstore import version_blobs


def entry_blobs(pred: dict[str, Any]) -> set[str]:
    """Every blob a ledger entry names."""
    out: set[str] = set()
    if "weights" in pred:
        out |= version_blobs(pred["weights"])
    p = pred.get("proposal") or {}
    out |= {b for b in (p.get("manifest_blob"), p.get("report_blob"), *p.get("approval_blobs", [])) if b}
    if pred.get("data"):
        out.add(pred["data"]["blob"])
    for d in pred.get("redacted", []):
        out.add(d["blob"])
    return out


def check_promotion(pred: dict[str, Any], blobs: BlobStore, keys: KeyRing, where: str) -> None:
    """A promote entry's report passed and its approvals meet the threshold it recorded."""
    p = pred["proposal"]
    report_env = blobs.read(p["report_blob"])
    _, report = verify_envelope(report_env, keys.trusted(GATE_ROLE), where=f"{where} report")
    if report["predicate"]["verdict"] != "pass":
        raise VerificationError(f"{where}: promoted a proposal whose report did not pass")
    envs = [(f"{where} approval {i + 1}", blobs.read(b)) for i, b in enumerate(p["approval_blobs"])]
    tally = decisions.count(envs, keys, p["id"], p["proposer"], sha256_hex(report_env), p["threshold"])
    if not tally.met or list(tally.approved_by) != p["approvers"]:
        raise VerificationError(f"{where}: recorded approvals do not verify ({tally.describe()})")


def verify_store(store: Store) -> dict[str, Any]:
    keys = KeyRing(store.keys_dir)
    blobs = BlobStore(store.blobs_dir)
    entries = Ledger(store.ledger_url, store.lock_path).entries(keys.trusted(GATE_ROLE))
    seen: set[str] = set()
    for e in entries:
        where = f"ledger entry {e.seq} ({e.predicate['action']} v{e.predicate['version']})"
        try:
            for b in sorted(entry_blobs(e.predicate) - seen):
                blobs.verify(b)
                seen.add(b)
            if e.predicate["action"] == "promote":
                check_promotion(e.predicate, blobs, keys, where)
        except VerificationError as exc:
            raise VerificationError(f"{where}: {exc}") from None
    return {"entries": len(entries), "blobs": len(seen), "champion": champion(entries)}
