"""Approvals, promotion and rollback: the only ways the champion changes.

Promotion needs a report that passed under the policy in force (the ledger's) and
approvals that meet the threshold of the trust root and the policy. It stores the new
version's weights and the encrypted update data, appends a ledger entry signed by the
releaser (the moment of promotion), then registers the version in MLflow, moves the
alias ``champion`` and publishes the signed head to the witnesses. A rollback needs the
root's rollback threshold of approver or operator signatures. The ledger is the source
of truth: a registry left behind by a crash is brought in line by the next write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance import approvals as decisions
from governance.errors import CheckFailed, UsageError, VerificationError
from governance.history import (
    check_origin,
    policy_in_force,
    refuse_if_forget_pending,
    removed_proposals,
)
from governance.keys import Signer
from governance.ledger import Entry, Ledger, champion, current_root, versions
from governance.proposals import Proposal, ProposalStore
from governance.signing import sha256_hex
from governance.store import Store
from governance.tensorstore import TensorStore
from governance.trust import Root
from governance.vault import seal
from update_pipeline import witnesses
from update_pipeline.registry_sync import sync_registry
from update_pipeline.scratch import scratch
from update_pipeline.shred import release_candidates
from update_pipeline.versions import (
    adapter_of,
    proposal_result,
    raw_reader,
    restore_version,
    verified_base,
)


@dataclass(frozen=True)
class Promoted:
    version: int
    entry: str
    status: decisions.ApprovalStatus


def trusted(store: Store) -> tuple[Ledger, list[Entry], Root, ProposalStore]:
    """The verified ledger, the trust root in force, and the proposals judged by it."""
    ledger = Ledger.of(store)
    entries = ledger.entries()
    root = current_root(entries)
    return ledger, entries, root, ProposalStore.of(store, entries)


def _report(proposals: ProposalStore, proposal: Proposal) -> tuple[bytes, dict[str, Any]]:
    latest = proposals.latest_report(proposal)
    if latest is None:
        raise CheckFailed(f"proposal {proposal.id} has not been checked: run 'weightgate check {proposal.id}'")
    return latest


def required_approvals(entries: list[Entry]) -> int:
    """The root's approval threshold, or the policy's if it asks for more."""
    ref = policy_in_force(entries)
    return max(current_root(entries).doc.thresholds.approvals, ref["approvals"] if ref else 1)


def decide(store: Store, ref: str, signer: Signer, decision: decisions.Decision, comment: str,
           report_digest: str | None = None) -> decisions.ApprovalStatus:
    """Sign an approval or rejection of the report the approver read (`report_digest`, a prefix will do),
    which must still be the proposal's newest; without it, of the newest."""
    _, entries, root, proposals = trusted(store)
    proposal = proposals.load(ref)
    envelope, report = _report(proposals, proposal)
    in_force = policy_in_force(entries)
    if decision == "approve" and (in_force is None or report["policy"]["digest"] != in_force["digest"]):
        raise CheckFailed(f"proposal {proposal.id} was checked under another policy than the one in force "
                          f"({in_force['name'] if in_force else 'none'}): it could never be promoted; run "
                          f"'weightgate check {proposal.id}' without --policy, then approve")
    if report_digest is not None and len(report_digest) < 8:
        raise UsageError("give at least 8 hex digits of the report's digest")
    if report_digest is not None and not sha256_hex(envelope).startswith(report_digest.lower()):
        raise CheckFailed(f"proposal {proposal.id}: the newest report is {sha256_hex(envelope)[:16]}, not the "
                          f"{report_digest[:16]} you named; read the newest report before deciding")
    if decision == "approve" and report["verdict"] != "pass":
        raise CheckFailed(f"proposal {proposal.id} failed its check ({', '.join(report['failed_gates'])}); "
                          "it cannot be approved")
    env = decisions.sign_decision(root, signer, proposal.id, proposal.proposer, sha256_hex(envelope),
                                  decision, comment)
    proposals.add_decision(proposal.id, signer.name, env)
    if decision == "reject":  # final for these bytes: proposing them again starts over
        release_candidates(store, Ledger.of(store).entries(), {proposal.id})
    return status(store, proposal.id)


def status(store: Store, ref: str) -> decisions.ApprovalStatus:
    _, entries, root, proposals = trusted(store)
    proposal = proposals.load(ref)
    envelope, _ = _report(proposals, proposal)
    return decisions.count(proposals.decisions(proposal), root, proposal.id, proposal.proposer,
                           sha256_hex(envelope), required_approvals(entries))


def _signed_data(proposal: Proposal) -> tuple[bytes, dict[str, Any]]:
    """The update data and its record keys, read once and checked: what was signed is what is sealed."""
    from governance.data import keyed

    raw, keys = proposal.data_path.read_bytes(), proposal.keys()
    if not keys.get("file") or keyed(keys["file"], raw) != proposal.manifest["data"]["mac"]:
        raise VerificationError(f"{proposal.id}/data.jsonl is not the data its proposer signed")
    return raw, keys


def seal_data(store: Store, ledger: Ledger, raw: bytes, keys: dict[str, Any], aad: str) -> dict[str, str]:
    """The data and its record keys sealed under one new key: (blob, keys_blob, key_id, aad)."""
    import json

    blobs = store.blobs()
    blob, key, key_id = seal(blobs, raw, aad.encode())
    keys_blob, _, _ = seal(blobs, json.dumps(keys).encode(), f"{aad}/keys".encode(), key)
    ledger.put_data_key(key_id, key)
    return {"blob": blob, "keys_blob": keys_blob, "key_id": key_id, "aad": aad}


def _data_record(store: Store, ledger: Ledger, proposal: Proposal, data: tuple[bytes, dict[str, Any]]
                 ) -> dict[str, Any]:
    d = proposal.manifest["data"]
    return {**seal_data(store, ledger, *data, proposal.id), "mac": d["mac"], "merkle_root": d["merkle_root"],
            "record_macs": d["record_macs"]}


def _recipe(store: Store, proposal: Proposal, version: int) -> list[dict[str, Any]] | None:
    import json

    digest = proposal.manifest["candidate"]["config_files"].get("weightgate-recipe.json")
    if digest is None or digest == proposal.manifest["base"]["config_files"].get("weightgate-recipe.json"):
        return None  # none, or its base's copied along: not how this candidate was made
    recipe = json.loads(store.blobs().read(digest))
    steps = recipe.get("steps") or [recipe]
    return [{**s, "data_version": s.get("data_version", version)} for s in steps]


def promote(store: Store, ref: str, signers: list[Signer], tracking_uri: str | None = None) -> Promoted:
    ledger = Ledger.of(store)
    blobs = store.blobs()
    tensors = TensorStore(blobs)
    with ledger.lock():
        entries = ledger.entries()
        root = current_root(entries)
        root.allow("promote", signers)
        refuse_if_forget_pending(entries)
        proposals = ProposalStore.of(store, entries)
        proposal = proposals.load(ref)
        if any((e.predicate.get("proposal") or {}).get("id") == proposal.id for e in entries):
            raise UsageError(f"proposal {proposal.id} is already promoted")
        if proposal.id in removed_proposals(entries):
            raise VerificationError(f"proposal {proposal.id} was removed by a forget (it held forgotten records); "
                                    "a copy put back can never be promoted")
        check_origin(entries, proposal.manifest.get("origin"), proposal.id)
        report_env, report = _report(proposals, proposal)
        if report["verdict"] != "pass":
            raise CheckFailed(f"proposal {proposal.id} failed its check: {', '.join(report['failed_gates'])}")
        in_force = policy_in_force(entries)
        if in_force is None or report["policy"]["digest"] != in_force["digest"]:
            raise CheckFailed(f"proposal {proposal.id} was checked under another policy than the one in force "
                              f"({in_force['name'] if in_force else 'none'}); check it again")
        tally = status(store, proposal.id)
        if not tally.met:
            raise CheckFailed(f"proposal {proposal.id}: {tally.describe()}")
        data = _signed_data(proposal)
        witnesses.check_witnesses(store, entries, tracking_uri, strict=False)
        base_dir = verified_base(store, proposal, tracking_uri)  # every byte used is hashed now, not trusted
        if champion(entries) is None:
            genesis = tensors.put_version(base_dir, None, None)
            entries.append(ledger.append(entries, {"action": "genesis", "version": 0, "champion": 0,
                                                   "weights": genesis, "source": proposal.manifest["base"]["ref"]},
                                         {"version-0": _weights_digest(genesis)}, signers))
        current = champion(entries)
        parent = versions(entries)[current].predicate["weights"]
        parent_files = {n: f["sha256"] for n, f in parent["files"].items() if "tensors" in f}
        if proposal.manifest["base"]["files"] != parent_files:
            raise UsageError(f"proposal {proposal.id} was made against another base than the champion "
                             f"(ledger:{current}); propose again with --base ledger:champion")
        version = max(versions(entries)) + 1
        with scratch(store, "promote") as tmp:
            result = proposal_result(store, proposal, base_dir, tmp / "result")
            lora = adapter_of(store, proposal, base_dir) if proposal.manifest["candidate"]["kind"] == "lora" else None
            weights = tensors.put_version(result, parent, raw_reader(base_dir), *(lora or ()))
        approvals_env = [env for _, env in proposals.decisions(proposal)]
        predicate = {
            "action": "promote", "version": version, "champion": version, "parent": current, "weights": weights,
            "proposal": {"id": proposal.id, "manifest_digest": proposal.manifest_digest,
                         "manifest_blob": blobs.put_bytes((proposal.dir / "manifest.dsse.json").read_bytes()),
                         "report_blob": blobs.put_bytes(report_env), "proposer": proposal.proposer,
                         "kind": proposal.manifest["candidate"]["kind"], "note": proposal.manifest["note"],
                         "origin": proposal.manifest.get("origin"),
                         "approval_blobs": [blobs.put_bytes(e) for e in approvals_env],
                         "approvers": list(tally.approved_by), "threshold": tally.threshold},
            "data": _data_record(store, ledger, proposal, data),
            "recipe": _recipe(store, proposal, version),
        }
        entry = witnesses.append(store, ledger, entries, predicate, {f"version-{version}": _weights_digest(weights)},
                                 signers, tracking_uri, after=lambda everything: sync_registry(store, everything,
                                                                                                tracking_uri))
        release_candidates(store, [*entries, entry])  # the ledger holds the version: one copy of its bytes
    return Promoted(version, entry.digest, tally)


def _weights_digest(weights: dict[str, Any]) -> str:
    from governance.signing import canonical_json

    return sha256_hex(canonical_json({n: f["sha256"] for n, f in weights["files"].items()}))


def rollback(store: Store, version: int, signers: list[Signer], tracking_uri: str | None = None,
             reason: str = "") -> tuple[Entry, Path]:
    """Make an earlier version the champion again, restored bit for bit; needs the root's rollback threshold."""
    ledger = Ledger.of(store)
    with ledger.lock():
        entries = ledger.entries()
        current_root(entries).allow("rollback", signers)
        refuse_if_forget_pending(entries)
        current = champion(entries)
        if current is None:
            raise UsageError("the ledger holds no versions: nothing to roll back")
        if version not in versions(entries):
            raise UsageError(f"unknown ledger version {version}; versions: "
                             f"{', '.join(map(str, sorted(versions(entries))))}")
        if version == current:
            raise UsageError(f"version {version} is already the champion")
        folder = restore_version(store, entries, version)
        weights = versions(entries)[version].predicate["weights"]
        entry = witnesses.append(store, ledger, entries, {"action": "rollback", "version": version,
                                                          "champion": version, "from": current, "reason": reason},
                                 {f"version-{version}": _weights_digest(weights)}, signers, tracking_uri,
                                 after=lambda everything: sync_registry(store, everything, tracking_uri))
    return entry, folder
