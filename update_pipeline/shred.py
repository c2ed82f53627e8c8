"""Shredding for a recorded forget: every copy of the records, and every version trained on them.

Each step can run again after a kill and does nothing the second time:
proposals (a promoted one's data loses the records; an unpromoted one that held them, or
stands on a tombstoned version, is removed), temporary files and caches, the blobs only
tombstoned versions and removed proposals used, the tombstoned versions' MLflow
artifacts, and last the keys: the old data keys and the key of the sealed search texts.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from governance.data import DataRecord, load_jsonl
from governance.errors import WeightgateError
from governance.history import tombstones
from governance.ledger import Entry, Ledger, versions
from governance.lineage import Lineage
from governance.proposals import ProposalStore
from governance.signing import unverified_statement
from governance.store import Store
from governance.tensorstore import version_blobs
from governance.vault import open_sealed
from update_pipeline.audit import entry_blobs
from update_pipeline.replay import data_of


def needles(texts: list[str]) -> list[bytes]:
    """What a copy of a text may look like on disk: as is, lower case, base64, JSON-escaped."""
    out: set[bytes] = set()
    for t in texts:
        for form in (t, t.lower()):
            out |= {form.encode(), base64.b64encode(form.encode()), json.dumps(form)[1:-1].encode()}
    return sorted(out)


def _remove_dir(path: Path) -> None:
    """Rename first (atomic), then delete: a kill leaves a .tmp- folder the next sweep removes."""
    doomed = path.with_name(f".tmp-removed-{uuid.uuid4().hex[:8]}")
    path.rename(doomed)
    shutil.rmtree(doomed)


def _candidate_blobs(pdir: Path) -> set[str]:
    try:
        cand = unverified_statement((pdir / "manifest.dsse.json").read_bytes())["predicate"]["candidate"]
        return {*cand["files"].values(), *cand["config_files"].values()}
    except (WeightgateError, OSError, KeyError, TypeError):
        return set()


def _holds(record: DataRecord, hashes: set[str], texts: list[bytes]) -> bool:
    """Whether a record is a copy of a forgotten one: its plain hash (known only until the sweep key is
    shredded) or one of the texts."""
    raw = json.dumps(record.to_json()).encode()
    return record.record_hash in hashes or any(n in raw for n in texts)


def doomed(store: Store, entries: list[Entry], hashes: set[str], texts: list[bytes], dead: set[int]) -> list[str]:
    """Unpromoted proposals a forget removes: they hold one of the records, or stand on a tombstoned version."""
    promoted = {e.predicate["proposal"]["id"] for e in entries if e.predicate["action"] == "promote"}
    out = []
    for pdir in sorted(store.proposals_dir.glob("prop-*")):
        if pdir.name in promoted:
            continue
        try:
            records = load_jsonl(pdir / "data.jsonl", allow_empty=True)
        except WeightgateError:
            records = []
        try:
            base = unverified_statement((pdir / "manifest.dsse.json").read_bytes())["predicate"]["base"]["ref"]
        except (WeightgateError, OSError, KeyError, TypeError):
            base = ""
        on_dead = isinstance(base, str) and base.startswith("ledger:") and base[7:].isdigit() and int(base[7:]) in dead
        if on_dead or any(_holds(r, hashes, texts) for r in records):
            out.append(pdir.name)
    return out


def _proposals(store: Store, entries: list[Entry], intent: Entry, removed: set[str], texts: list[bytes],
               dead: set[int]) -> tuple[list[str], set[str], list[str]]:
    """Redact promoted proposals that held the records; returns (proposals to remove: those the intent named and
    any that hold the records now, proposals whose candidate blobs are no longer wanted, MLflow runs whose
    reports may quote the records)."""
    promoted = {e.predicate["proposal"]["id"]: e.predicate["version"] for e in entries
                if e.predicate["action"] == "promote"}
    proposals = ProposalStore.of(store, entries)
    for tmp in store.proposals_dir.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    gone = sorted({*intent.predicate.get("proposals", []), *doomed(store, entries, removed, texts, dead)})
    unwanted, runs = set(gone), []
    for pdir in sorted(store.proposals_dir.glob("prop-*")):
        if pdir.name in promoted:
            if promoted[pdir.name] in dead:
                unwanted.add(pdir.name)
            if not proposals.redact(pdir.name, lambda r: _holds(r, removed, texts)) and pdir.name not in unwanted:
                continue
        elif pdir.name not in gone:
            continue
        try:
            runs.append(json.loads((pdir / "lineage.json").read_text())["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return gone, unwanted, runs


def _sweep(folder: Path, texts: list[bytes]) -> None:
    """Delete every file under `folder` (MLflow's artifact store) that holds one of the texts."""
    if not texts or not folder.is_dir():
        return
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        if any(n in path.read_bytes() for n in texts):
            path.unlink()


def _cache(store: Store, removed: set[str], texts: list[bytes], dead: set[int]) -> None:
    """Temporary folders go; restores of tombstoned versions go; a JSONL file loses the records; any other
    file holding one of the texts goes."""
    cache = store.cache_dir
    if not cache.is_dir():
        return
    for p in [*cache.glob("tmp*"), *cache.glob(".tmp*"), *cache.glob("ledger/.v*"),
              *(cache / "ledger" / f"v{v}" for v in dead)]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
    for path in [p for p in cache.rglob("*") if p.is_file()]:
        raw = path.read_bytes()
        if not any(n in raw for n in texts) and not (path.suffix == ".jsonl" and removed):
            continue
        try:
            records = load_jsonl(path, allow_empty=True) if path.suffix == ".jsonl" else None
        except WeightgateError:
            records = None
        if records is None:
            path.unlink()
            continue
        kept = [r for r in records if not _holds(r, removed, texts)]
        if len(kept) != len(records):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(b"".join(json.dumps(r.to_json(), sort_keys=True).encode() + b"\n" for r in kept))
            tmp.replace(path)


def _blobs(store: Store, entries: list[Entry], dead: set[int], unwanted: set[str], gone: list[str]) -> int:
    """Delete the blobs only tombstoned versions and unwanted proposals used, then the removed proposals'
    folders; returns how many blobs went."""
    made = versions(entries)
    doomed: set[str] = set()
    for v in dead:
        doomed |= version_blobs(made[v].predicate["weights"])
    for pdir in store.proposals_dir.glob("prop-*"):
        if pdir.name in unwanted:
            doomed |= _candidate_blobs(pdir)
    kept = _kept(store, entries, dead, unwanted)
    team = store.shared_files()
    for pid in gone:  # their blobs are known now: the folders can go
        if team is not None:
            team.remove(store.proposals_dir / pid)
        if (store.proposals_dir / pid).is_dir():
            _remove_dir(store.proposals_dir / pid)
    return _unlink(store, doomed - kept)


def _kept(store: Store, entries: list[Entry], dead: set[int], spent: set[str]) -> set[str]:
    """Blobs still wanted: every ledger entry's (but tombstoned versions' weights) and the candidate files of
    every proposal not in `spent`."""
    kept: set[str] = set()
    for e in entries:
        kept |= entry_blobs(e.predicate, skip_weights=e.predicate.get("version") in dead
                            and e.predicate["action"] in ("genesis", "promote"))
    for pdir in store.proposals_dir.glob("prop-*"):
        if pdir.name not in spent:
            kept |= _candidate_blobs(pdir)
    return kept


def _unlink(store: Store, digests: set[str]) -> int:
    blobs = store.blobs()
    if blobs.remote is None or len(digests) < 2:
        return sum(blobs.delete(b) for b in sorted(digests))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:  # a team's artifact store: one request or two a blob
        return sum(pool.map(blobs.delete, sorted(digests)))


def release_candidates(store: Store, entries: list[Entry], rejected: set[str] = frozenset()) -> int:
    """Delete the candidate files of promoted proposals (the ledger holds their version now) and of the
    `rejected` ones, where no ledger entry and no other proposal names the same bytes; returns how many
    blobs went. A kill part way leaves blobs the next call deletes."""
    spent = {e.predicate["proposal"]["id"] for e in entries if e.predicate["action"] == "promote"} | set(rejected)
    doomed: set[str] = set()
    for pid in spent:
        doomed |= _candidate_blobs(store.proposals_dir / pid)
    return _unlink(store, doomed - _kept(store, entries, set(tombstones(entries)), spent))


def shred(store: Store, ledger: Ledger, entries: list[Entry], intent: Entry, tracking_uri: str | None
          ) -> dict[str, Any]:
    """Carry out a forget entry's shredding; returns what the forget_done entry records."""
    p = intent.predicate
    dead = set(tombstones(entries[:intent.seq]))
    sweep = p.get("sweep")
    key = ledger.data_key(sweep["key_id"]) if sweep else None
    found = json.loads(open_sealed(store.blobs(), sweep["blob"], key, sweep["aad"].encode())
                       ) if sweep and key else {"texts": [], "hashes": []}
    removed, texts = set(found["hashes"]), needles(found["texts"])
    gone, unwanted, runs = _proposals(store, entries, intent, removed, texts, dead)
    lineage = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir)
    for run in runs:  # gate reports logged to MLflow may quote a flagged record
        lineage.delete_run_artifacts(run, "reports")
    deleted = _blobs(store, entries, dead, unwanted, gone)
    _cache(store, removed, texts, dead)
    _sweep(store.artifacts_dir, texts)
    for v in sorted(dead):
        lineage.tombstone(store.model_name, v, f"trained on records forgotten by ledger entry {intent.seq}")
    before = entries[:intent.seq - 1]
    old = [data_of(before, r["version"])["key_id"] for r in p["redacted"]]
    for k in [*old, *([sweep["key_id"]] if sweep else [])]:
        ledger.destroy_data_key(k)
    return {"shredded_keys": len(old), "deleted_blobs": deleted, "removed_proposals": gone}
