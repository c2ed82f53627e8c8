"""Unlearning: revert one update among many, or forget one person's records.

Both end in a new proposal against the champion, which must pass the gates and be
approved before promotion. ``--exact`` replays recorded recipes without the removed
update or records; ``--approximate`` subtracts the update's delta (task-vector
negation) and is labelled approximate in the proposal, the ledger and MLflow.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from governance.blobs import BlobStore
from governance.data import load_jsonl
from governance.errors import UsageError, WeightgateError
from governance.keys import Signer
from governance.ledger import Ledger, champion, current_root, versions
from governance.proposals import ProposalStore
from governance.store import Store
from governance.trust import RULES, Root
from governance.vault import seal
from update_pipeline import witnesses
from update_pipeline.intake import Proposed, propose
from update_pipeline.replay import data_of, lineage, read_data, replay, steps_of
from update_pipeline.train import RECIPE
from update_pipeline.versions import restore_version


@dataclass(frozen=True)
class Unlearned:
    proposal: Proposed | None
    method: str
    affected: list[int]
    replayed: list[int]
    removed: list[str] = field(default_factory=list)
    problem: str | None = None


@dataclass(frozen=True)
class Plan:
    """What an unlearning request will do, worked out before anything is written."""

    method: str
    affected: list[int]
    start: int | None
    replayed: list[int]
    records: int = 0
    problem: str | None = None

    def describe(self) -> str:
        if self.problem:
            return f"no exact replay is possible: {self.problem}"
        if self.method == "approximate":
            return (f"subtract the weight change of ledger:{self.affected[0]} from the champion; the result is "
                    "APPROXIMATE and labelled so in the proposal, the ledger and MLflow")
        what = f"{self.records} record(s) in ledger:{self.affected}, " if self.records else ""
        return (f"{what}replay the recorded recipes of {self.replayed or 'no version'} from ledger:{self.start} "
                "(exact: the model that training without it would have made)")


def plan_revert(store: Store, version: int, exact: bool) -> Plan:
    ledger = Ledger.of(store)
    entries = ledger.entries()
    chain = lineage(entries) if entries else []
    if version not in chain or version == 0:
        raise UsageError(f"ledger:{version} is not an update in the champion's lineage ({chain[1:]})")
    if not exact:
        return Plan("approximate", [version], None, [])
    later = chain[chain.index(version) + 1:]
    return _checked(entries, Plan("exact", [version], versions(entries)[version].predicate["parent"], later))


def _checked(entries: list, plan: Plan) -> Plan:
    try:
        steps_of(entries, plan.replayed)
    except UsageError as exc:
        return Plan(plan.method, plan.affected, plan.start, plan.replayed, plan.records, str(exc))
    return plan


def _hits(store: Store, ledger: Ledger, entries: list, record_id: str | None, text: str | None,
          work: Path) -> dict[int, set[str]]:
    if (record_id is None) == (text is None) or text == "":
        raise UsageError("give exactly one of --record-id or --text")
    promoted = sorted(v for v, e in versions(entries).items() if e.predicate.get("data"))
    hits = {v: _matches(store, ledger, entries, v, record_id, text, work) for v in promoted}
    hits = {v: h for v, h in hits.items() if h}
    if not hits:
        raise UsageError("no promoted update's data contains that record")
    return hits


def _forget_plan(entries: list, affected: list[int], records: int) -> Plan:
    chain = lineage(entries)
    in_chain = [v for v in chain if v in affected]
    if not in_chain:
        return Plan("exact", affected, None, [], records, "no affected version is in the champion's lineage")
    first = in_chain[0]
    return _checked(entries, Plan("exact", affected, versions(entries)[first].predicate["parent"],
                                  chain[chain.index(first):], records))


def plan_forget(store: Store, record_id: str | None, text: str | None) -> Plan:
    ledger = Ledger.of(store)
    entries = ledger.entries()
    with tempfile.TemporaryDirectory(dir=store.cache_dir) as tmp:
        hits = _hits(store, ledger, entries, record_id, text, Path(tmp))
    return _forget_plan(entries, sorted(hits), len(set().union(*hits.values())))


def replay_proposer(root: Root, signer: Signer, by: str | None) -> str:
    """Who signs forget's replay proposal: `by`, else the forget's signer when the root lets it propose."""
    name = by or signer.name
    found = root.by_name(name)
    if found is None or found[1].role not in RULES["propose"][0]:
        raise UsageError(f"the replay proposal needs a proposer key: {name!r} cannot propose; "
                         "name one with --proposer")
    return name


def _approximate(store: Store, entries: list, version: int, dest: Path) -> Path:
    from safetensors.torch import save_file

    from update_pipeline.weights import WEIGHT_SUFFIX, load_tensors

    made = versions(entries)
    champ = restore_version(store, entries, champion(entries))
    target = restore_version(store, entries, version)
    parent = restore_version(store, entries, made[version].predicate["parent"])
    shutil.copytree(champ, dest)
    (dest / RECIPE).unlink(missing_ok=True)  # an approximate result cannot be replayed
    for f in sorted(p.relative_to(champ) for p in champ.rglob(f"*{WEIGHT_SUFFIX}")):
        c, t, p = load_tensors(champ / f), load_tensors(target / f), load_tensors(parent / f)
        out = {n: (x.float() - (t[n].float() - p[n].float())).to(x.dtype).contiguous() if n in t and n in p else x
               for n, x in c.items()}
        save_file(out, str(dest / f), metadata={"format": "pt"})
    return dest


def revert(store: Store, version: int, exact: bool, signer: Signer, by: str | None, passphrase: str | None,
           tracking_uri: str | None = None) -> Unlearned:
    """Build the model without ledger:VERSION, record the signed request (a revert entry by `signer`, an
    approver or operator), then propose the result, signed by the proposer key `by` (default: `signer`),
    with an origin naming that entry."""
    plan = plan_revert(store, version, exact)
    ledger = Ledger.of(store)
    entries = ledger.entries()
    root = current_root(entries)
    root.allow("revert", [signer])
    by = replay_proposer(root, signer, by)
    with tempfile.TemporaryDirectory(dir=store.cache_dir) as tmp:
        work = Path(tmp)
        base_ref = f"ledger:{champion(entries)}"
        if exact:
            later, parent = plan.replayed, plan.start
            assert parent is not None
            result, data, _ = replay(store, ledger, entries, parent, later, work)
            origin = {"revert": version, "method": "exact", "start": parent, "replayed": later}
            note = f"exact revert of ledger:{version}: replayed {later or 'nothing'} from ledger:{parent}"
        else:
            result = _approximate(store, entries, version, work / "result")
            data = work / "empty.jsonl"
            data.write_text("")
            later, origin = [], {"revert": version, "method": "approximate", "approximate": True}
            note = f"APPROXIMATE revert of ledger:{version} (task-vector negation)"
        with ledger.lock():
            entries = ledger.entries()
            champ = champion(entries)
            entry = witnesses.append(store, ledger, entries, {
                "action": "revert", "version": champ, "champion": champ, "target": version,
                "method": origin["method"], "start": origin.get("start"), "replayed": later},
                {f"revert-{version}": _digest([str(version), origin["method"]])}, [signer], tracking_uri)
        origin["entry"] = entry.seq
        proposed = propose(store, base_ref, result, data, by, passphrase, note, tracking_uri, origin)
    return Unlearned(proposed, origin["method"], [version], later)


def _matches(store: Store, ledger: Ledger, entries: list, v: int, record_id: str | None, text: str | None,
             work: Path) -> set[str]:
    """Record hashes in version v's data that match the request."""
    d = data_of(entries, v)
    if record_id is not None:
        return {h for rid, h in d["record_hashes"] if rid == record_id}
    path = work / f"scan-v{v}.jsonl"
    path.write_bytes(read_data(store, ledger, entries, v))
    return {r.record_hash for r in load_jsonl(path, allow_empty=True)
            if any(text in value for value in r.fields.values())}


def _without(raw: bytes, removed: set[str], work: Path) -> tuple[bytes, list[list[str]]]:
    path = work / ".redact.jsonl"
    path.write_bytes(raw)
    kept = [r for r in load_jsonl(path, allow_empty=True) if r.record_hash not in removed]
    return b"".join(json.dumps(r.to_json(), sort_keys=True).encode() + b"\n" for r in kept), \
        [[r.id, r.record_hash] for r in kept]


def forget(store: Store, record_id: str | None, text: str | None, signer: Signer, by: str | None,
           passphrase: str | None, tracking_uri: str | None = None) -> Unlearned:
    """Crypto-shred the matching records (a ledger entry signed by `signer`, an approver or operator),
    then propose an exact replay without them, signed by the proposer key `by` (default: `signer`)."""
    ledger = Ledger.of(store)
    blobs = BlobStore(store.blobs_dir)
    with ledger.lock(), tempfile.TemporaryDirectory(dir=store.cache_dir) as tmp:
        work = Path(tmp)
        entries = ledger.entries()
        root = current_root(entries)
        root.allow("forget", [signer])
        by = replay_proposer(root, signer, by)
        hits = _hits(store, ledger, entries, record_id, text, work)
        removed = sorted(set().union(*hits.values()))
        redacted, old_keys = [], []
        for v in hits:
            d = data_of(entries, v)
            plain, kept = _without(read_data(store, ledger, entries, v), set(removed), work)
            blob, key, key_id = seal(blobs, plain, d["aad"].encode())
            ledger.put_data_key(key_id, key)
            redacted.append({"version": v, "blob": blob, "key_id": key_id, "aad": d["aad"], "record_hashes": kept,
                             "previous_blob": d["blob"]})
            old_keys.append(d["key_id"])
        champ = champion(entries)
        entry = witnesses.append(store, ledger, entries, {"action": "forget", "version": champ, "champion": champ,
                                                          "removed": removed, "redacted": redacted},
                                 {"removed-records": _digest(removed)}, [signer], tracking_uri)
        for k in old_keys:  # crypto-shred: the old ciphertext can never be read again
            ledger.destroy_data_key(k)
        entries.append(entry)
        _redact_copies(store, entries, set(removed), hits)
    return _replay_without(store, ledger, entries, sorted(hits), removed, by, passphrase, tracking_uri)


def _digest(items: list[str]) -> str:
    from governance.signing import canonical_json, sha256_hex

    return sha256_hex(canonical_json(items))


def _redact_copies(store: Store, entries: list, removed: set[str], hits: dict[int, set[str]]) -> None:
    """Remove the records from the store's plaintext copies: proposals' data and working files."""
    proposals = ProposalStore(store.proposals_dir, current_root(entries))
    made = versions(entries)
    for v in hits:
        pid = made[v].predicate["proposal"]["id"]
        proposals.redact(pid, removed)
    for path in store.cache_dir.rglob("*.jsonl"):
        try:
            plain, kept = _without(path.read_bytes(), removed, path.parent)
        except WeightgateError:  # not update data: leave it
            continue
        if len(kept) != len(load_jsonl(path, allow_empty=True)):
            path.write_bytes(plain)


def _replay_without(store: Store, ledger: Ledger, entries: list, affected: list[int], removed: list[str],
                    by: str | None, passphrase: str | None, tracking_uri: str | None) -> Unlearned:
    """The exact replay without the removed records; its origin names the forget entry (the last one)."""
    plan = _forget_plan(entries, affected, len(removed))
    if plan.start is None:
        return Unlearned(None, "exact", affected, [], removed, plan.problem)
    start, todo = plan.start, plan.replayed
    with tempfile.TemporaryDirectory(dir=store.cache_dir) as tmp:
        try:
            result, data, _ = replay(store, ledger, entries, start, todo, Path(tmp))
        except UsageError as exc:
            return Unlearned(None, "exact", affected, [], removed, str(exc))
        origin = {"forget": removed, "method": "exact", "start": start, "replayed": todo, "entry": len(entries)}
        note = f"forget {len(removed)} record(s): replayed {todo} from ledger:{start} without them"
        proposed = propose(store, f"ledger:{champion(entries)}", result, data, by, passphrase, note,
                           tracking_uri, origin)
    return Unlearned(proposed, "exact", affected, todo, removed)
