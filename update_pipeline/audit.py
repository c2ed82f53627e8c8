"""Verifying the whole store: the ledger chain, every signature, every blob it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.audit_bundle import check_promotion, export_bundle
from governance.blobs import BlobStore
from governance.errors import VerificationError
from governance.keys import KeyRing
from governance.ledger import Ledger, champion
from governance.store import Store
from governance.tensorstore import version_blobs
from update_pipeline.hashing import sha256_files


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


def verify_store(store: Store) -> dict[str, Any]:
    """The chain, every signature, every blob a ledger entry names, and every blob in the store."""
    keys = KeyRing(store.keys_dir)
    blobs = BlobStore(store.blobs_dir)
    entries = Ledger(store.ledger_url, store.lock_path).entries(keys.list())
    on_disk = [p for p in store.blobs_dir.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    digests = sha256_files(on_disk)
    corrupt = {p.name for p in on_disk if digests[p] != p.name}
    named: set[str] = set()
    for e in entries:
        where = f"ledger entry {e.seq} ({e.predicate['action']} v{e.predicate['version']})"
        try:
            for b in sorted(entry_blobs(e.predicate)):
                if b in corrupt or not blobs.has(b):
                    blobs.verify(b)  # raises, naming the blob
            if e.predicate["action"] == "promote":
                check_promotion(e.predicate, blobs.read, keys.list(), where)
        except VerificationError as exc:
            raise VerificationError(f"{where}: {exc}") from None
        named |= entry_blobs(e.predicate)
    if corrupt:
        raise VerificationError(f"blob {sorted(corrupt)[0][:12]} is corrupt: its bytes do not hash to its name "
                                "(no ledger entry names it)")
    return {"entries": len(entries), "blobs": len(on_disk), "champion": champion(entries)}


def export(store: Store, out: Path) -> Path:
    """Write the audit bundle for the store's whole ledger."""
    import datetime

    keys = KeyRing(store.keys_dir)
    entries = Ledger(store.ledger_url, store.lock_path).entries(keys.list())
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return export_bundle([e.envelope for e in entries], BlobStore(store.blobs_dir).read, keys.list(), out, created)
