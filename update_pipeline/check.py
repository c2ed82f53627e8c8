"""Run the gates a policy requires on a proposal, and sign the report.

Fails closed: an erroring gate fails, an empty set of gates fails, an update kind
the policy does not allow fails. The report is an in-toto statement over the
proposal's manifest envelope, signed by the gate runner's key, stored with the
proposal and logged to the proposal's MLflow run.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audits.base import GateContext
from audits.registry import build_gates, load_policy
from governance.blobs import BlobStore
from governance.data import load_jsonl
from governance.errors import VerificationError
from governance.keys import KeyRing
from governance.lineage import Lineage
from governance.proposals import Proposal, ProposalStore
from governance.records import Finding, GateResult, Report
from governance.signing import canonical_json, sign_envelope, statement, verify_envelope
from governance.store import Store
from update_pipeline import refs
from update_pipeline.hashing import sha256_files
from update_pipeline.versions import proposal_result


@dataclass(frozen=True)
class Checked:
    report: dict[str, Any]
    envelope: Path
    data_path: Path


def _base_dir(store: Store, proposal: Proposal, tracking_uri: str | None) -> Path:
    folder = refs.resolve(proposal.manifest["base"]["ref"], store, tracking_uri)
    expected = proposal.manifest["base"]["files"]
    actual = sha256_files([folder / n for n in expected])
    for name, digest in expected.items():
        if actual[folder / name] != digest:
            raise VerificationError(f"base {folder}: {name} changed since the proposal was made")
    return folder


def _result_dir(store: Store, proposal: Proposal, base_dir: Path) -> Path:
    """The full model the update would make (for LoRA and delta updates: the base with it applied)."""
    dest = Path(tempfile.mkdtemp(prefix=f"{proposal.id}-", dir=store.cache_dir))
    return proposal_result(store, proposal, base_dir, dest / "model")


def _history(store: Store) -> list[dict[str, Any]]:
    """Per-tensor delta statistics of every promoted update, oldest first (from the ledger)."""
    from governance.keys import KeyRing
    from governance.ledger import Ledger

    keys = KeyRing(store.keys_dir)
    blobs = BlobStore(store.blobs_dir)
    out = []
    for e in Ledger(store.ledger_url, store.lock_path).entries(keys.list()):
        if e.predicate["action"] == "promote":
            manifest = blobs.read(e.predicate["proposal"]["manifest_blob"])
            _, body = verify_envelope(manifest, keys.trusted("proposer"), where=f"ledger entry {e.seq} manifest")
            out.append(body["predicate"]["delta"]["tensors"])
    return out


def _kind_result(proposal: Proposal, allowed: list[str]) -> GateResult:
    kind = proposal.manifest["candidate"]["kind"]
    ok = kind in allowed
    findings = () if ok else (Finding(f"update kind {kind!r} is not allowed (allowed: {', '.join(allowed)})"),)
    return GateResult("update_kind", "pass" if ok else "fail", {}, {"kind": kind, "allowed": allowed}, findings)


def check(store: Store, ref: str, policy_path: Path | None = None, tracking_uri: str | None = None) -> Checked:
    keys = KeyRing(store.keys_dir)
    proposals = ProposalStore(store.proposals_dir, keys)
    proposal = proposals.load(ref)
    policy = load_policy(policy_path or store.policy_path)
    gates = build_gates(policy)
    base = functools.cache(lambda: _base_dir(store, proposal, tracking_uri))
    candidate = functools.cache(lambda: _result_dir(store, proposal, base()))
    records = load_jsonl(proposal.data_path, allow_empty=proposal.manifest.get("origin") is not None)
    ctx = GateContext(proposal, tuple(records), base, candidate, functools.cache(lambda: _history(store)))
    results = [_kind_result(proposal, list(policy.allowed_update_kinds))]
    try:
        results += [gate.run(ctx) for gate in gates]
    finally:
        if candidate.cache_info().currsize:
            shutil.rmtree(candidate().parent, ignore_errors=True)
    report = Report(proposal.id, proposal.manifest_digest, policy.name, policy.digest, tuple(results),
                    round(time.time(), 3)).to_dict()
    key, info = keys.gate_key()
    envelope = sign_envelope(statement({"manifest.dsse.json": proposal.manifest_digest}, "GateReport/v1", report),
                             key, info.keyid)
    path = proposals.add_report(proposal.id, envelope)
    lineage = proposal.lineage()
    if lineage.get("run_id"):
        uri = tracking_uri or lineage.get("tracking_uri") or store.tracking_uri()
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / path.name.replace(".dsse", "")
            plain.write_bytes(canonical_json(report))
            Lineage(uri, store.artifacts_dir).log_report(lineage["run_id"], report, path, plain)
    return Checked(report, path, proposal.data_path)
