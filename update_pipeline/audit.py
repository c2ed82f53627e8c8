"""Verifying the whole store: the chain and its trust roots, every signature and blob, the witnesses;
with ``deep``, every version restored and every reference between entries checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.audit_bundle import check_promotion, export_bundle
from governance.errors import UsageError, VerificationError
from governance.history import removed_proposals, tombstones
from governance.ledger import Entry, Ledger, chain, champion, current_root, versions
from governance.policy import composite_digest
from governance.signing import sha256_hex
from governance.store import Store
from governance.tensorstore import TensorStore, version_blobs
from update_pipeline.hashing import sha256_files
from update_pipeline.scratch import scratch
from update_pipeline.witnesses import check_witnesses


def entry_blobs(pred: dict[str, Any], skip_weights: bool = False) -> set[str]:
    """Every blob a ledger entry names (but a tombstoned version's weights, with `skip_weights`)."""
    out: set[str] = set()
    if "weights" in pred and not skip_weights:
        out |= version_blobs(pred["weights"])
    p = pred.get("proposal") or {}
    out |= {b for b in (p.get("manifest_blob"), p.get("report_blob"), *p.get("approval_blobs", [])) if b}
    for d in [pred["data"]] if pred.get("data") else []:
        out |= {d["blob"], d["keys_blob"]}
    for d in pred.get("redacted", []):
        out |= {d["blob"], d["keys_blob"]}
    if pred.get("sweep"):
        out.add(pred["sweep"]["blob"])
    if pred.get("policy"):
        out |= {pred["policy"]["blob"], *pred["policy"]["suites"].values()}
    return out


def verify_store(store: Store, deep: bool = False, tracking_uri: str | None = None,
                 anchor: str | None = None) -> dict[str, Any]:
    """The chain, every signature, every blob a ledger entry names, every blob in the store, the witnesses."""
    blobs = store.blobs()
    team = store.shared_files()
    if team is not None:  # this home's cache of the proposals, brought in line with the team's copy
        team.pull()
    ledger = Ledger.of(store, anchor)
    entries = ledger.entries()
    if not entries:
        raise VerificationError("the ledger is empty: no trust root (run 'weightgate trust init')")
    on_disk = [p for p in store.blobs_dir.rglob("*") if p.is_file()  # not a write or a download cut short
               and not any(part.startswith(".") for part in p.relative_to(store.blobs_dir).parts)]
    digests = sha256_files(on_disk)
    corrupt = {p.name for p in on_disk if digests[p] != p.name}
    dead, removed = tombstones(entries), removed_proposals(entries)
    for e in entries:
        where = f"ledger entry {e.seq} ({e.predicate['action']} v{e.predicate['version']})"
        gone = e.predicate["action"] in ("genesis", "promote") and e.predicate["version"] in dead
        try:
            for b in sorted(entry_blobs(e.predicate, skip_weights=gone)):
                if b in corrupt or not blobs.has(b):
                    blobs.verify(b)  # raises, naming the blob
            if e.predicate["action"] == "promote":
                check_promotion(e, entries, blobs.read, where)
            if e.predicate["action"] == "report" and e.predicate["proposal_id"] not in removed:
                _report_file(store, e.predicate, where)
            if deep:
                _deep(store, ledger, entries, e, where)
        except VerificationError as exc:
            raise VerificationError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None
    if corrupt:
        raise VerificationError(f"blob {sorted(corrupt)[0][:12]} is corrupt: its bytes do not hash to its name "
                                "(no ledger entry names it)")
    seen = check_witnesses(store, entries, tracking_uri)
    root = current_root(entries)
    return {"entries": len(entries), "blobs": len(on_disk), "champion": champion(entries),
            "root_version": root.version, "root_fingerprint": root.fingerprint, "witnesses": seen,
            "anchored": ledger.anchor is not None, "deep": deep}


def _deep(store: Store, ledger: Ledger, entries: list[Entry], e: Entry, where: str) -> None:
    """Restore a version and hash its files; check what rollback/forget/policy entries refer to."""
    pred = e.predicate
    made = versions(entries[:e.seq])
    action = pred["action"]
    if action in ("genesis", "promote"):
        if pred["version"] not in tombstones(entries):  # a tombstoned version's weights are deleted on purpose
            _restores(store, entries, pred, where)
        if action == "promote":
            _report_policy(store, entries, e, where)
            if pred["parent"] not in made:
                raise VerificationError(f"{where}: parent ledger:{pred['parent']} does not exist before it")
            shredded = {k for x in entries if x.predicate["action"] == "forget" for k in _old_keys(entries, x)}
            key_id = pred["data"]["key_id"]
            if ledger.data_key(key_id) is None and key_id not in shredded:
                raise VerificationError(f"{where}: the key of its update data is gone, and no forget entry "
                                        "shredded it")
    elif action == "rollback":
        for v in (pred["version"], pred["from"]):
            if v not in made:
                raise VerificationError(f"{where}: refers to ledger:{v}, which does not exist before it")
    elif action == "revert":
        if pred["target"] not in made:
            raise VerificationError(f"{where}: reverts ledger:{pred['target']}, which does not exist before it")
    elif action == "forget":
        for r in pred["redacted"]:
            if r["version"] not in made:
                raise VerificationError(f"{where}: redacts ledger:{r['version']}, which does not exist before it")
    elif action == "policy":
        ref = pred["policy"]
        blobs = store.blobs()
        suites = {n: sha256_hex(blobs.read(b)) for n, b in ref["suites"].items()}
        if composite_digest(sha256_hex(blobs.read(ref["blob"])), suites) != ref["digest"]:
            raise VerificationError(f"{where}: the policy digest does not cover its file and suite files")


def _report_file(store: Store, pred: dict[str, Any], where: str) -> None:
    """Every recorded report is still there, byte for byte: deleting the newest cannot revive an older one."""
    path = store.proposals_dir / pred["proposal_id"] / "reports" / f"{pred['number']}.dsse.json"
    if not path.is_file() or sha256_hex(path.read_bytes()) != pred["report"]:
        raise VerificationError(f"{where}: report {pred['number']} of {pred['proposal_id']} is "
                                f"{'missing' if not path.is_file() else 'not the one recorded'}")


def _restores(store: Store, entries: list[Entry], pred: dict[str, Any], where: str) -> None:
    with scratch(store, "audit") as tmp:
        out = TensorStore(store.blobs()).restore(chain(entries, pred["version"]), tmp / "v")
        want = {n: f["sha256"] for n, f in pred["weights"]["files"].items()}
        have = sha256_files([out / n for n in want])
        for n, digest in want.items():
            if have[out / n] != digest:
                raise VerificationError(f"{where}: restored {n} does not hash to its manifest's sha256")


def _report_policy(store: Store, entries: list[Entry], e: Entry, where: str) -> None:
    """The promoted report's policy parts are the file and suite files the policy entry stored."""
    from governance.history import policy_in_force
    from governance.signing import unverified_statement

    blobs = store.blobs()
    ref = policy_in_force(entries, e.seq)
    assert ref is not None  # check_promotion already refused a promotion without one
    said = unverified_statement(blobs.read(e.predicate["proposal"]["report_blob"]))["predicate"]["policy"]
    suites = {n: sha256_hex(blobs.read(b)) for n, b in ref["suites"].items()}
    if said.get("file") != sha256_hex(blobs.read(ref["blob"])) or said.get("suites") != suites:
        raise VerificationError(f"{where}: the report's policy file or suite digests are not the policy in force's")


def _old_keys(entries: list[Entry], forget: Entry) -> set[str]:
    """Data keys a forget entry replaced (and so destroyed)."""
    from update_pipeline.replay import data_of

    before = entries[:forget.seq - 1]
    return {data_of(before, r["version"])["key_id"] for r in forget.predicate["redacted"]}


def export(store: Store, out: Path) -> Path:
    """Write the audit bundle for the store's whole ledger, with its signed head."""
    import datetime

    ledger = Ledger.of(store)
    entries = ledger.entries()
    if not entries:
        raise UsageError("the ledger is empty: nothing to export")
    checkpoint = ledger.checkpoint(len(entries))
    if checkpoint is None:
        raise UsageError(f"ledger entry {len(entries)} has no signed checkpoint (an interrupted write?): sign one "
                         "with 'weightgate ledger checkpoint --by KEY'")
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return export_bundle(entries, checkpoint, store.blobs().read, out, created)
