"""Intake: turn a proposed update into a signed manifest, a stored proposal and an MLflow run.

Everything is read and checked before anything is written: a refused input leaves
the store exactly as it was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance.data import DataRecord, keyed, load_jsonl, merkle_root, record_keys, record_macs
from governance.errors import InputError, UsageError
from governance.history import policy_in_force
from governance.keys import KeyRing
from governance.lineage import Lineage
from governance.policy import Limits, in_force
from governance.proposals import proposal_id
from governance.signing import sha256_hex, sign_envelope, statement
from governance.store import Store
from update_pipeline import refs
from update_pipeline.deltas import candidate_kind, compute_delta, delta_stats
from update_pipeline.hashing import sha256_files
from update_pipeline.scratch import scratch
from update_pipeline.train import RECIPE
from update_pipeline.weights import WEIGHT_SUFFIX, folder_tensors, model_files


@dataclass(frozen=True)
class Proposed:
    id: str
    run_id: str
    kind: str
    manifest_digest: str
    notes: tuple[str, ...] = ()  # what the proposer should know, kept in the signed manifest ("notes")


NO_RECIPE = ("no training recipe: once promoted, an exact revert of this update, or an exact forget of records "
             "it trained on, is impossible (revert/forget --approximate remain)")


def _files(folder: Path, limits: Limits) -> tuple[dict[str, Path], dict[str, Path]]:
    """(weight files, config/tokenizer files) of a folder, by relative name."""
    files = {p.relative_to(folder).as_posix(): p for p in model_files(folder, limits.max_side_file_mb << 20)}
    weights = {n: p for n, p in files.items() if n.endswith(WEIGHT_SUFFIX)}
    return weights, {n: p for n, p in files.items() if n not in weights}


def data_source(data: Path) -> str:
    """The data file as the proposer named it, for reports that point at its lines (SARIF): relative to the
    current directory when it lies under it (CI runs from the repository root), else absolute."""
    full = Path(os.path.abspath(data))
    try:
        return full.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return full.as_posix()


def build_manifest(base_ref: str, base_dir: Path, candidate: Path, data: Path, proposer: str, note: str,
                   origin: dict[str, Any] | None = None, limits: Limits | None = None
                   ) -> tuple[dict[str, Any], dict[str, Path], list[DataRecord], dict[str, Any]]:
    """The manifest, the candidate's files to store (name -> path), the data records and their keys (the
    manifest holds only keyed hashes of the data: governance.data.record_keys)."""
    limits = limits or Limits()
    kind = candidate_kind(candidate)
    base_w, base_c = _files(base_dir, limits)
    if kind == "delta":
        cand_w, cand_c = {candidate.name: candidate}, {}
    else:
        cand_w, cand_c = _files(candidate, limits)
    if kind == "full" and "config.json" not in cand_c:
        raise InputError(f"{candidate}: a full model folder needs its config.json (copy the base's if the "
                         "architecture is unchanged)")
    if data.is_file() and data.stat().st_size > limits.max_data_mb << 20:
        raise InputError(f"{data}: {data.stat().st_size >> 20} MiB of update data is over the {limits.max_data_mb} MiB "
                         "the policy allows (limits.max_data_mb)")
    records = load_jsonl(data, allow_empty=origin is not None)
    if len(records) > limits.max_records:
        raise InputError(f"{data}: {len(records)} records is over the {limits.max_records} the policy allows "
                         "(limits.max_records)")
    keys = record_keys(len(records))
    macs = record_macs(records, keys)
    base = folder_tensors(base_dir)
    delta = compute_delta(kind, candidate, base)
    digests = sha256_files([*base_w.values(), *base_c.values(), *cand_w.values(), *cand_c.values()])
    stats = delta_stats(delta, base)
    notes = [NO_RECIPE] if origin is None and RECIPE not in cand_c else []
    manifest = {
        "schema": "weightgate.manifest/v1",
        "created": round(time.time(), 3),
        "proposer": proposer,
        "note": note,
        "origin": origin,
        **({"notes": notes} if notes else {}),
        "base": {"ref": base_ref, "files": {n: digests[p] for n, p in base_w.items()},
                 "config_files": {n: digests[p] for n, p in base_c.items()}},
        "candidate": {"kind": kind, "source": str(candidate),
                      "files": {n: digests[p] for n, p in cand_w.items()},
                      "config_files": {n: digests[p] for n, p in cand_c.items()}},
        "data": {"mac": keyed(keys["file"], data.read_bytes()), "records": len(records),
                 "merkle_root": merkle_root(macs), "record_macs": macs,
                 **({} if origin is not None else {"source": data_source(data)})},
        "delta": {"tensors": stats, "changed_tensors": sum(1 for s in stats.values() if s["l2"] > 0),
                  "total_l2": sum(s["l2"] ** 2 for s in stats.values()) ** 0.5},
    }
    return manifest, {**cand_w, **cand_c}, records, keys


def propose(store: Store, base_ref: str, candidate: Path, data: Path, by: str, passphrase: str | None,
            note: str = "", tracking_uri: str | None = None, origin: dict[str, Any] | None = None) -> Proposed:
    """Refuse bad input, then sign the manifest, store the proposal and log its MLflow run.

    `origin` marks proposals made by weightgate itself (reverts, forgets); their data may be empty.
    """
    from update_pipeline.promote import trusted

    _, entries, root, proposals = trusted(store)
    signer = KeyRing(store.keys_dir).signer(by, passphrase)
    root.allow("propose", [signer])
    base_dir = refs.resolve(base_ref, store, tracking_uri)
    base_ref = refs.pin(base_ref, store, tracking_uri)
    limits = in_force(store.blobs().read, policy_in_force(entries), "limits")
    manifest, to_store, records, keys = build_manifest(base_ref, base_dir, candidate, data, by, note, origin, limits)
    cand = manifest["candidate"]
    subjects = {f"candidate/{n}": d for n, d in {**cand["files"], **cand["config_files"]}.items()}
    subjects["data.jsonl"] = manifest["data"]["mac"]  # HMAC-SHA256 under the file's key, not a plain sha256
    envelope = sign_envelope(statement(subjects, "Proposal/v1", manifest), signer.key, signer.keyid)

    pid = proposal_id(envelope)
    if (store.proposals_dir / pid).exists():
        raise UsageError(f"proposal {pid} already exists")
    blobs = store.blobs()
    for name, path in to_store.items():
        blobs.put_file(path, {**cand["files"], **cand["config_files"]}[name])
    run_id = _log(store, pid, manifest, records, envelope, tracking_uri)  # a kill here leaves only a stray run
    proposals.create(envelope, data, {"run_id": run_id, "tracking_uri": store.tracking_uri(tracking_uri)}, keys)
    return Proposed(pid, run_id, cand["kind"], sha256_hex(envelope), tuple(manifest.get("notes", [])))


def _log(store: Store, pid: str, manifest: dict[str, Any], records: list[DataRecord], envelope: bytes,
         tracking_uri: str | None) -> str:
    import pandas as pd

    frame = pd.DataFrame([{"line": r.line, "kind": r.kind, "chars": sum(len(v) for v in r.fields.values())}
                          for r in records])  # no ids or plain hashes leave the proposal
    pdir = store.proposals_dir / pid
    params = {"base": manifest["base"]["ref"], "candidate_kind": manifest["candidate"]["kind"],
              "data_merkle_root": manifest["data"]["merkle_root"], "proposer": manifest["proposer"],
              "manifest_digest": sha256_hex(envelope),
              "records": manifest["data"]["records"], "note": manifest["note"]}
    delta = manifest["delta"]
    metrics = {"delta.total_l2": delta["total_l2"], "delta.changed_tensors": delta["changed_tensors"],
               "data.records": manifest["data"]["records"]}
    metrics.update({f"delta.l2.{n}": s["l2"] for n, s in delta["tensors"].items()})
    lineage = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir)
    with scratch(store, "intake") as tmp:
        signed = tmp / "manifest.dsse.json"
        signed.write_bytes(envelope)
        return lineage.log_proposal(pid, params, metrics, {"proposal": signed}, frame,
                                    manifest["data"]["merkle_root"], str(pdir / "data.jsonl"))
