"""Run the gates a policy requires on a proposal, and sign the report.

Fails closed: an erroring gate fails, an empty set of gates fails, an update kind
the policy does not allow fails. The report is an in-toto statement over the
proposal's manifest envelope, signed by the gate runner's key, stored with the
proposal and logged to the proposal's MLflow run.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audits.base import GateContext, Version
from audits.evaluation import model_digest
from audits.registry import build_gates, load_policy
from governance.data import DataRecord, load_jsonl, probe_split, ranked
from governance.keys import KeyRing
from governance.lineage import Lineage
from governance.proposals import Proposal
from governance.records import Finding, GateResult, Report
from governance.signing import canonical_json, sign_envelope, statement, verify_signers
from governance.store import Store
from update_pipeline.scratch import scratch
from update_pipeline.train import HOLDOUT, RECIPE
from update_pipeline.versions import proposal_result, require_candidate, verified_base

TAUGHT = 32  # trained records per update kept as probe cases


@dataclass(frozen=True)
class Checked:
    report: dict[str, Any]
    envelope: Path
    data_path: Path


def history(store: Store) -> list[dict[str, Any]]:
    """Per-tensor delta statistics of every promoted update, oldest first (from the ledger)."""
    from governance.ledger import Ledger
    from governance.trust import RULES

    blobs = store.blobs()
    out = []
    for e in Ledger.of(store).entries():
        if e.predicate["action"] == "promote":
            manifest = blobs.read(e.predicate["proposal"]["manifest_blob"])
            _, body = verify_signers(manifest, e.root.public_keys(*RULES["propose"][0]),
                                     where=f"ledger entry {e.seq} manifest")
            out.append(body["predicate"]["delta"]["tensors"])
    return out


def probe_of(records: list[DataRecord], steps: list[dict[str, Any]] | None) -> tuple[list[DataRecord], bool]:
    """An update's probe set: the records its recipe held out of training (or, with no recipe or one
    from before hold-outs were recorded, the same deterministic split made now: not held out),
    then up to TAUGHT records it trained on, the cases of what it taught."""
    if steps and all("probe_records" in s for s in steps):  # the split is deterministic: made again here
        held, held_out = probe_split(records, max(s["holdout"] for s in steps))[1], True
    else:
        held, held_out = probe_split(records, HOLDOUT)[1], False
    kept = {id(r) for r in held}
    rest = [r for r in ranked(records) if id(r) not in kept]
    answered = [r for r in rest if "completion" in r.fields]
    return held + (answered or rest)[:TAUGHT], held_out


def _lineage(store: Store) -> list[Version]:
    """The ledger versions the champion descends from, genesis first, with their probe sets."""
    from governance.ledger import Ledger, versions
    from update_pipeline.replay import lineage, read_data
    from update_pipeline.versions import restore_version

    ledger = Ledger.of(store)
    entries = ledger.entries()
    if not lineage(entries):
        return []
    made = versions(entries)
    out = []
    for v in lineage(entries):
        pred = made[v].predicate
        probe: list[DataRecord] = []
        held = True
        if pred.get("data"):
            with scratch(store, f"data-v{v}") as tmp:
                path = tmp / "data.jsonl"
                path.write_bytes(read_data(store, ledger, entries, v))
                probe, held = probe_of(load_jsonl(path, allow_empty=True), pred.get("recipe"))
        files = {n: f["sha256"] for n, f in pred["weights"]["files"].items() if "tensors" in f}
        out.append(Version(f"ledger:{v}", model_digest(files),
                           functools.cache(lambda v=v: restore_version(store, entries, v)), tuple(probe), held))
    return out


def _own_probe(store: Store, proposal: Proposal, records: list[DataRecord]) -> tuple[tuple[DataRecord, ...], bool]:
    digest = proposal.manifest["candidate"]["config_files"].get(RECIPE)
    recipe = json.loads(store.blobs().read(digest)) if digest else None
    probe, held = probe_of(records, (recipe.get("steps") or [recipe]) if recipe else None)
    return tuple(probe), held


def _kind_result(proposal: Proposal, allowed: list[str]) -> GateResult:
    kind = proposal.manifest["candidate"]["kind"]
    ok = kind in allowed
    findings = () if ok else (Finding(f"update kind {kind!r} is not allowed (allowed: {', '.join(allowed)})"),)
    origin = proposal.manifest.get("origin") or {}
    if origin.get("approximate"):  # labelled in the signed report: not the guarantees of an exact replay
        findings += (Finding(f"APPROXIMATE {'forget' if 'forget' in origin else 'revert'}: made by subtracting "
                             "weight changes (task-vector negation), not by an exact replay", level="note"),)
    evidence = {"kind": kind, "allowed": allowed, **({"unlearning": origin.get("method")} if origin else {})}
    return GateResult("update_kind", "pass" if ok else "fail", {}, evidence, findings)


def _record(store: Store, pid: str, number: int, envelope: bytes, verdict: str, gate: Any,
            tracking_uri: str | None) -> None:
    """The report's ledger entry, signed by the gate key: from now on it is the proposal's report in force."""
    from governance.ledger import Ledger, champion
    from governance.signing import sha256_hex
    from update_pipeline import witnesses

    ledger = Ledger.of(store)
    with ledger.lock():
        entries = ledger.entries()
        champ = champion(entries)
        witnesses.append(store, ledger, entries, {
            "action": "report", "version": champ, "champion": champ, "proposal_id": pid, "number": number,
            "report": sha256_hex(envelope), "verdict": verdict}, {f"{pid}/reports/{number}": sha256_hex(envelope)},
            [gate], tracking_uri)


def _policy_in_force(store: Store, entries: list[Any]) -> Path:
    """The store's policy file; on a team's servers, first made the policy the ledger has in force (another
    member may have changed it since this home last looked)."""
    from governance.history import policy_in_force

    ref = policy_in_force(entries)
    if store.team and ref is not None:
        data = store.blobs().read(ref["blob"])
        if not store.policy_path.is_file() or store.policy_path.read_bytes() != data:
            tmp = store.policy_path.with_name(".policy.yaml.tmp")
            tmp.write_bytes(data)
            tmp.replace(store.policy_path)
    return store.policy_path


def check(store: Store, ref: str, policy_path: Path | None = None, tracking_uri: str | None = None) -> Checked:
    from governance.history import check_origin
    from update_pipeline.promote import trusted

    _, entries, root, proposals = trusted(store)
    gate = KeyRing(store.keys_dir).gate_signer()
    root.allow("report", [gate])
    proposal = proposals.load(ref)
    require_candidate(store, proposal)
    check_origin(entries, proposal.manifest.get("origin"), proposal.id)  # before any gate judges it leniently
    policy = load_policy(policy_path or _policy_in_force(store, entries))
    gates = build_gates(policy)
    base = functools.cache(lambda: verified_base(store, proposal, tracking_uri))
    records = load_jsonl(proposal.data_path, allow_empty=proposal.manifest.get("origin") is not None)
    results = [_kind_result(proposal, list(policy.allowed_update_kinds))]
    with scratch(store, f"check-{proposal.id}") as work:  # the candidate's full model: removed on any exit
        candidate = functools.cache(lambda: proposal_result(store, proposal, base(), work / "model"))
        ctx = GateContext(proposal, tuple(records), base, candidate, functools.cache(lambda: history(store)),
                          functools.cache(lambda: _lineage(store)), lambda: _own_probe(store, proposal, records),
                          store.cache_dir / "eval")
        results += [gate.run(ctx) for gate in gates]
    report = Report(proposal.id, proposal.manifest_digest, policy.name, policy.digest, tuple(results),
                    round(time.time(), 3), {"file": policy.file_digest, "suites": policy.suites}).to_dict()
    envelope = sign_envelope(statement({"manifest.dsse.json": proposal.manifest_digest}, "GateReport/v1", report),
                             gate.key, gate.keyid)
    path = proposals.add_report(proposal.id, envelope)  # the file first: unrecorded, it is never in force
    _record(store, proposal.id, int(path.name.split(".")[0]), envelope, report["verdict"], gate, tracking_uri)
    lineage = proposal.lineage()
    if lineage.get("run_id"):
        uri = tracking_uri or lineage.get("tracking_uri") or store.tracking_uri()
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / path.name.replace(".dsse", "")
            plain.write_bytes(canonical_json(report))
            Lineage(uri, store.artifacts_dir).log_report(lineage["run_id"], report, path, plain)
    return Checked(report, path, proposal.data_path)
