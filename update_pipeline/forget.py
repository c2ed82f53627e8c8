"""Forget one person's records: a two-phase operation that a kill cannot leave half done.

1. Check, writing nothing: the actor may forget, the replay proposer's key unlocks, an exact
   replay is possible (or ``replay=False`` was asked for, or ``approximate=True``).
2. Intent, one signed ``forget`` entry: the affected versions' data re-encrypted without the
   records under new keys; every version trained on them (the affected ones and everything
   descended from them) tombstoned; the champion moved to the newest version they never
   touched; the texts to search copies for sealed under a key of their own.
3. The exact replay without the records, proposed against that version, its origin naming the intent;
   with ``approximate=True``, instead the old champion minus the weight changes of the affected versions
   in its lineage (task-vector negation, computed before their weights are shredded), labelled
   APPROXIMATE in the intent (``method``), the proposal's origin and note, and from there everywhere.
4. Shredding (update_pipeline.shred), then a ``forget_done`` entry naming the intent.

A rerun (``forget --resume``, or any later forget) finishes an interrupted one; promote and
rollback refuse to run while one is unfinished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from governance.data import DataRecord, load_jsonl, record_macs
from governance.errors import UsageError, WeightgateError
from governance.history import pending_forget, tombstones
from governance.keys import KeyRing, Signer
from governance.ledger import Entry, Ledger, champion, current_root, versions
from governance.proposals import record_keys_of
from governance.store import Store
from governance.vault import seal
from update_pipeline import shred, witnesses
from update_pipeline.intake import Proposed, propose
from update_pipeline.promote import seal_data
from update_pipeline.replay import data_of, lineage, read_data, read_keys, replay, steps_of
from update_pipeline.scratch import scratch
from update_pipeline.unlearn import Plan, Unlearned, approximate, checked_plan, digest, proposal_for, replay_proposer

MIN_SWEEP = 8  # shorter strings (ids, sources) would match unrelated files


def strings(obj: Any) -> list[str]:
    """Every string in a JSON value, keys included."""
    out, todo = [], [obj]
    while todo:
        o = todo.pop()
        if isinstance(o, str):
            out.append(o)
        elif isinstance(o, dict):
            todo.extend([*o.keys(), *o.values()])
        elif isinstance(o, list):
            todo.extend(o)
    return out


def matcher(record_id: str | None, text: str | None):  # noqa: ANN201 (a predicate on records)
    """Whether a record is the one asked for: by id, or holding the text in any field (id, meta, source too)."""
    if (record_id is None) == (text is None) or text == "" or record_id == "":
        raise UsageError("give exactly one of --record-id or --text")
    if record_id is not None:
        return lambda r: r.id == record_id
    return lambda r: any(text in s for s in strings(r.to_json()))


def _records(raw: bytes, work: Path) -> list[DataRecord]:
    path = work / ".scan.jsonl"
    path.write_bytes(raw)
    try:
        return load_jsonl(path, allow_empty=True)
    finally:
        path.unlink()


def find(store: Store, ledger: Ledger, entries: list[Entry], match: Any, work: Path
         ) -> tuple[dict[int, set[str]], list[DataRecord], set[str]]:
    """(promoted version -> keyed hashes of its matching records, every matching record (proposals' copies
    too), the keyed hashes of all of them)."""
    hits: dict[int, set[str]] = {}
    found: list[DataRecord] = []
    macs: set[str] = set()
    for v, e in sorted(versions(entries).items()):
        if e.predicate.get("data"):
            records = _records(read_data(store, ledger, entries, v), work)
            got = [(r, m) for r, m in zip(records, record_macs(records, read_keys(store, ledger, entries, v)),
                                          strict=True) if match(r)]
            if got:
                hits[v] = {m for _, m in got}
                found += [r for r, _ in got]
    for pdir in sorted(store.proposals_dir.glob("prop-*")):
        try:
            records = load_jsonl(pdir / "data.jsonl", allow_empty=True)
        except WeightgateError:
            continue
        found += [r for r in records if match(r)]
        try:
            macs |= {m for r, m in zip(records, record_macs(records, record_keys_of(pdir)), strict=True) if match(r)}
        except (ValueError, TypeError):
            pass  # keys missing or edited: its copy is still removed, by content
    if not found:
        raise UsageError("no promoted update's data contains that record, nor does any proposal's")
    return hits, found, macs | set().union(*hits.values())


def plan_of(entries: list[Entry], hits: dict[int, set[str]], records: int, approx: bool = False) -> Plan:
    """Replay from the parent of the first affected version in the champion's lineage; nothing to replay when
    the lineage holds none. With `approx`, negate the affected versions in the lineage instead."""
    chain = lineage(entries) if entries else []
    in_chain = [v for v in chain if v in hits]
    if not in_chain:
        return Plan("exact", sorted(hits), None, [], records)
    start = versions(entries)[in_chain[0]].predicate["parent"]
    if approx:
        return Plan("approximate", sorted(hits), start, [], records, negated=in_chain)
    return checked_plan(entries, Plan("exact", sorted(hits), start, chain[chain.index(in_chain[0]):], records))


def refusal(entries: list[Entry], plan: Plan) -> str:
    """Why no exact replay is possible, naming every version that cannot be replayed, and what to do."""
    why = []
    for v in plan.replayed:
        try:
            steps_of(entries, [v])
        except UsageError as exc:
            why.append(f"ledger:{v} " + ("is itself a replay" if "itself a replay" in str(exc)
                                         else "has no training recipe (trained outside weightgate, or approximate)"))
    return (f"no exact replay is possible: {'; '.join(why) or plan.problem}; nothing was changed: rerun with "
            "--approximate to negate the affected updates' weight changes instead (the result is labelled "
            "APPROXIMATE), or with --no-replay to only tombstone the versions trained on the records")


def plan_forget(store: Store, record_id: str | None, text: str | None, approx: bool = False) -> Plan:
    ledger = Ledger.of(store)
    entries = ledger.entries()
    with scratch(store, "forget") as tmp:
        hits, found, _ = find(store, ledger, entries, matcher(record_id, text), tmp)
    return plan_of(entries, hits, len({r.record_hash for r in found}), approx)


def descendants(entries: list[Entry], roots: set[int]) -> set[int]:
    """`roots` and every version whose parent chain reaches one of them."""
    made = versions(entries)
    out = set(roots)
    for v in sorted(made):
        parent = made[v].predicate.get("parent")
        if parent in out:
            out.add(v)
    return out


def _intent(store: Store, ledger: Ledger, match: Any, sweep_text: str | None, signer: Signer, replay_wanted: bool,
            tracking_uri: str | None, approx: bool = False) -> Entry:
    from update_pipeline.promote import sync_registry

    blobs = store.blobs()
    with ledger.lock(), scratch(store, "forget") as tmp:
        entries = ledger.entries()
        current_root(entries).allow("forget", [signer])
        hits, found, macs = find(store, ledger, entries, match, tmp)
        removed = sorted(macs)
        hashes = {r.record_hash for r in found}
        plan = plan_of(entries, hits, len(hashes), approx and replay_wanted)
        if plan.problem and replay_wanted:
            raise UsageError(refusal(entries, plan))  # before the first write
        redacted = []
        for v in sorted(hits):
            d = data_of(entries, v)
            records = _records(read_data(store, ledger, entries, v), tmp)
            kept = [(r, k) for r, k in zip(records, read_keys(store, ledger, entries, v)["records"], strict=True)
                    if r.record_hash not in hashes]
            plain = b"".join(json.dumps(r.to_json(), sort_keys=True).encode() + b"\n" for r, _ in kept)
            sealed = seal_data(store, ledger, plain, {"file": None, "records": [k for _, k in kept]}, d["aad"])
            redacted.append({"version": v, **sealed, "record_macs": [r.mac(k) for r, k in kept],
                             "previous_blob": d["blob"]})
        texts = sorted({s for r in found for s in (*r.fields.values(), r.id, sweep_text) if s and len(s) >= MIN_SWEEP})
        sweep = {"texts": texts, "hashes": sorted(hashes)}  # what copies look like; shredded at the end
        sblob, skey, skey_id = seal(blobs, json.dumps(sweep).encode(), b"forget-sweep")
        ledger.put_data_key(skey_id, skey)
        dead = descendants(entries, set(hits))
        gone = shred.doomed(store, entries, hashes, shred.needles(texts), dead | set(tombstones(entries)))
        champ = champion(entries)
        new_champ = plan.start if champ in dead else champ
        return witnesses.append(store, ledger, entries, {
            "action": "forget", "version": new_champ, "champion": new_champ, "removed": removed,
            "redacted": redacted, "affected": sorted(hits), "tombstoned": sorted(dead), "start": plan.start,
            "replayed": plan.replayed if replay_wanted else [], "method": plan.method,
            **({"negated": plan.negated} if plan.negated else {}),
            "sweep": {"blob": sblob, "key_id": skey_id, "aad": "forget-sweep"}, "proposals": gone},
            {"removed-records": digest(removed)}, [signer], tracking_uri,
            after=lambda everything: sync_registry(store, everything, tracking_uri))


def _replay_proposal(store: Store, entries: list[Entry], intent: Entry, by: str, passphrase: str | None,
                     tracking_uri: str | None) -> Proposed | None:
    """The exact replay without the records, or the approximate negation (made once: a rerun finds the one
    already proposed)."""
    p = intent.predicate
    if p["start"] is None or not (p["replayed"] or p.get("negated")):
        return None
    found = proposal_for(store, entries, intent.seq)
    if found is not None:
        return found
    ledger = Ledger.of(store)
    with scratch(store, "forget") as tmp:
        if p.get("negated"):  # from the weights as they were before the intent tombstoned them (shredded next)
            result = approximate(store, entries[:intent.seq - 1], p["negated"], tmp / "result")
            data = tmp / "empty.jsonl"
            data.write_text("")
            origin = {"forget": p["removed"], "method": "approximate", "approximate": True, "start": p["start"],
                      "negated": p["negated"], "entry": intent.seq}
            note = (f"APPROXIMATE forget of {len(p['removed'])} record(s): the weight changes of "
                    f"{', '.join(f'ledger:{v}' for v in p['negated'])} subtracted (task-vector negation), "
                    "not an exact replay")
            return propose(store, f"ledger:{p['start']}", result, data, by, passphrase, note, tracking_uri, origin)
        result, data, _ = replay(store, ledger, entries, p["start"], p["replayed"], tmp)
        origin = {"forget": p["removed"], "method": "exact", "start": p["start"], "replayed": p["replayed"],
                  "entry": intent.seq}
        note = f"forget {len(p['removed'])} record(s): replayed {p['replayed']} from ledger:{p['start']} without them"
        return propose(store, f"ledger:{p['start']}", result, data, by, passphrase, note, tracking_uri, origin)


def _finish(store: Store, intent: Entry, signer: Signer, by: str, passphrase: str | None,
            tracking_uri: str | None) -> Unlearned:
    ledger = Ledger.of(store)
    proposed = _replay_proposal(store, ledger.entries(), intent, by, passphrase, tracking_uri)
    with ledger.lock():
        entries = ledger.entries()
        done = shred.shred(store, ledger, entries, intent, tracking_uri)
        champ = champion(entries)
        witnesses.append(store, ledger, entries, {"action": "forget_done", "version": champ, "champion": champ,
                                                  "forget": intent.seq, **done},
                         {f"forget-{intent.seq}": intent.digest}, [signer], tracking_uri)
    ledger.compact("data_keys", "shared_files")  # the destroyed keys and removed files, out of dead rows
    p = intent.predicate
    return Unlearned(proposed, p.get("method", "exact"), p["affected"], p["replayed"], p["removed"],
                     tombstoned=p["tombstoned"], negated=p.get("negated", []))


def forget(store: Store, record_id: str | None, text: str | None, signer: Signer, by: str | None,
           passphrase: str | None, tracking_uri: str | None = None, replay_wanted: bool = True,
           approx: bool = False) -> Unlearned:
    """Forget the matching records (signed by `signer`, an approver or operator) and propose the exact replay
    without them (with `approx`, the approximate negation), signed by the proposer key `by` (default:
    `signer`). Finishes an interrupted forget first; with neither `record_id` nor `text`, only that."""
    if approx and not replay_wanted:
        raise UsageError("--approximate builds a proposal; --no-replay builds none: give one of them")
    ledger = Ledger.of(store)
    entries = ledger.entries()
    root = current_root(entries)
    root.allow("forget", [signer])
    by = replay_proposer(root, signer, by)
    KeyRing(store.keys_dir).signer(by, passphrase)  # a wrong passphrase stops here, before anything is written
    pending = pending_forget(entries)
    resumed = _finish(store, pending, signer, by, passphrase, tracking_uri) if pending else None
    if record_id is None and text is None:
        if resumed is None:
            raise UsageError("no interrupted forget to resume; give --record-id or --text")
        return resumed
    match = matcher(record_id, text)
    if resumed is not None:
        try:
            with scratch(store, "forget") as tmp:
                find(store, ledger, ledger.entries(), match, tmp)
        except UsageError:
            return resumed  # the interrupted forget was this one
    intent = _intent(store, ledger, match, text, signer, replay_wanted, tracking_uri, approx)
    return _finish(store, intent, signer, by, passphrase, tracking_uri)
