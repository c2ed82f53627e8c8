"""Exact replay: rebuild a version's weights from an earlier one by re-running recorded recipes.

Every version promoted from ``weightgate train`` output carries its recipe (data, seed,
hyper-parameters). Replaying the recipes of a lineage, in order, on CPU with the same
thread count reproduces the weights bit for bit, so leaving one update (or one record)
out gives exactly the model that would have been trained without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from governance.data import DataRecord, load_jsonl
from governance.errors import UsageError
from governance.ledger import Entry, Ledger, champion, versions
from governance.store import Store
from governance.vault import open_sealed
from update_pipeline.train import RECIPE, train_update
from update_pipeline.versions import apply_update, restore_version


def lineage(entries: list[Entry]) -> list[int]:
    """The versions the champion descends from, genesis first."""
    made = versions(entries)
    out: list[int] = []
    v: int | None = champion(entries)
    while v is not None:
        out.append(v)
        v = made[v].predicate.get("parent")
    return out[::-1]


def data_of(entries: list[Entry], version: int) -> dict[str, Any]:
    """Where a version's update data lives now (after any forget)."""
    current = versions(entries)[version].predicate.get("data")
    if current is None:
        raise UsageError(f"ledger:{version} has no update data")
    for e in entries:
        for r in e.predicate.get("redacted", []):
            if r["version"] == version:
                current = r
    return current


def read_data(store: Store, ledger: Ledger, entries: list[Entry], version: int) -> bytes:
    d = data_of(entries, version)
    return open_sealed(store.blobs(), d["blob"], ledger.data_key(d["key_id"]), d["aad"].encode())


def read_keys(store: Store, ledger: Ledger, entries: list[Entry], version: int) -> dict[str, Any]:
    """The record keys sealed with a version's update data."""
    import json

    d = data_of(entries, version)
    return json.loads(open_sealed(store.blobs(), d["keys_blob"], ledger.data_key(d["key_id"]),
                                  f"{d['aad']}/keys".encode()))


LEGACY_LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]  # what recipes recorded before they named their targets


def _records(store: Store, ledger: Ledger, entries: list[Entry], version: int, work: Path) -> list[DataRecord]:
    path = work / f"data-v{version}.jsonl"
    path.write_bytes(read_data(store, ledger, entries, version))
    return load_jsonl(path, allow_empty=True)


def steps_of(entries: list[Entry], replay: list[int]) -> list[dict[str, Any]]:
    made = versions(entries)
    steps: list[dict[str, Any]] = []
    for v in replay:
        pred = made[v].predicate
        recipe = pred.get("recipe")
        if not recipe:
            raise UsageError(f"ledger:{v} has no training recipe, so it cannot be replayed exactly; "
                             "use --approximate")
        if any(s.get("start") not in (None, pred["parent"]) for s in recipe):
            raise UsageError(f"ledger:{v} is itself a replay; exact replay across it is not supported")
        steps.extend({k: val for k, val in s.items() if k != "start"} for s in recipe)
    return steps


def train_step(step: dict[str, Any], base: Path, records: list[DataRecord], out: Path, name: str) -> None:
    """One recorded recipe re-run as it ran; a recipe from before one was recorded gets what was used then
    (max_len: the model's context, at most 256; LoRA targets: GPT-2's; holdout: none; device: cpu)."""
    train_update(base, name, records, out, lora=step["lora"], epochs=step["epochs"], seed=step["seed"],
                 lr=step["lr"], batch_size=step["batch_size"], max_len=step.get("max_len"),
                 holdout=step.get("holdout", 0.0), device=step.get("device", "cpu"),
                 targets=step.get("lora_targets", LEGACY_LORA_TARGETS) if step["lora"] else None)


def replay(store: Store, ledger: Ledger, entries: list[Entry], start: int, replay_versions: list[int],
           work: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Weights of `start` with the recipes of `replay_versions` re-run in order.

    Returns (model folder, data file of everything replayed, the steps run).
    """
    steps = steps_of(entries, replay_versions)
    current = restore_version(store, entries, start)
    data_out = work / "replayed.jsonl"
    with open(data_out, "wb") as fh:
        for i, step in enumerate(steps):
            records = _records(store, ledger, entries, step["data_version"], work)
            for r in records:  # ids stay unique across the versions replayed: prefixed with the version
                fh.write(json.dumps({**r.to_json(), "id": f"v{step['data_version']}/{r.id}"}, sort_keys=True).encode()
                         + b"\n")
            out = work / f"step{i}"
            if records:
                train_step(step, current, records, out, f"ledger replay step {i}")
            else:  # every record of this update was forgotten: the step changes nothing
                shutil.copytree(current, out)
            if step["lora"] and records:
                out = apply_update("lora", out, current, work / f"step{i}-merged")
            current = out
    result = work / "result"
    shutil.copytree(current, result)
    (result / RECIPE).write_text(json.dumps({"steps": [{**s, "start": start} for s in steps]}, indent=2) + "\n")
    return result, data_out, steps
