"""Store size and restore speed over 20 promoted updates, as ratios measured in this run.

A GPT-2-style model (default about 15M parameters, 60 MB in float32) built from its config goes
through a real store 20 times: ``weightgate train`` (its default learning rate: 3e-4 full, 1e-3
LoRA), propose, check (a policy with the data validation gate only: the gates are not what is
measured here), approve, promote. Three runs: full fine-tunes in float32, full fine-tunes in
bfloat16, LoRA updates (PEFT's default targets) on a float32 model. Printed, against goals:

  whole store (every file under the store, hard links counted once) / 20 checkpoints   <= 1.0
  ledger (the blobs the versions' weights name) / 20 checkpoints        <= 0.7 fp32, <= 0.6 bf16
  LoRA: bytes one LoRA version adds to the store / one checkpoint       <= 0.05 each
  rollback to one of the last K versions (policy storage.registry_versions) / plain copy
    of the checkpoint file                                              <= 1.5
  restore of a random older version from the ledger's blobs / (load_file + reading every tensor) <= 3
    (and / a plain copy of the checkpoint file, which also writes one)

Times are medians of --repeat runs; the keys are unlocked once, before timing (a rollback's
passphrase prompt is not the store's cost).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def disk_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`, each inode once (MLflow's copies are hard links to the cache)."""
    seen, total = set(), 0
    for p in folder.rglob("*"):
        st = p.lstat()
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def fresh_store(work: Path, folder: str = "home", **init):  # noqa: ANN003, ANN201
    """A store with demo keys, a trust root and a policy whose only gate is data validation; `init` goes to
    Store.init (a team store's servers)."""
    import yaml

    import policies
    from governance.store import Store
    from update_pipeline.demo import _demo_service, _ensure_trust

    policy = yaml.safe_load(policies.path("default").read_text())
    policy.update(name="ledger-bench", gates={"data_validation": policy["gates"]["data_validation"]})
    path = work / f"{folder}-policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    store = Store.locate(work / folder)
    store.init(path, **init)
    _ensure_trust(store, lambda _m: None)
    _demo_service(store).apply_policy(path, ["demo-admin"])
    return store


def promote_updates(store, base: Path, n: int, lora: bool, records: int, work: Path) -> list[int]:  # noqa: ANN001
    """n updates, each trained on the champion with new data; returns the store's bytes after each."""
    from governance.data import load_jsonl, write_jsonl
    from update_pipeline import refs, world
    from update_pipeline.check import check
    from update_pipeline.demo import APPROVER, PROPOSER, _demo_service
    from update_pipeline.intake import propose
    from update_pipeline.train import train_update

    svc = _demo_service(store)
    per = max(1, records // 4)  # fact_records gives four records a country
    countries = world.countries(n=24 + n * per)[24:]
    sizes = []
    for i in range(n):
        ref = str(base) if i == 0 else "ledger:champion"
        data = write_jsonl(world.fact_records(countries[i * per:(i + 1) * per], "curated"), work / f"data-{i}.jsonl")
        cand = work / f"cand-{i}"
        train_update(refs.resolve(ref, store), ref, load_jsonl(data), cand, epochs=1, seed=i, lora=lora, holdout=0.0)
        p = propose(store, ref, cand, data, PROPOSER, "demo-passphrase")
        assert check(store, p.id).report["verdict"] == "pass"
        svc.approve(p.id, APPROVER)
        svc.promote(p.id, APPROVER)
        if i == 1 and not lora:
            print(f"  per-bit entropy of the XOR of two consecutive versions (the best an XOR delta coded bit "
                  f"by bit reaches; the stored delta is a difference): {entropy(work / 'cand-0', cand):.2f} of raw")
        if i:
            shutil.rmtree(work / f"cand-{i - 1}")
        sizes.append(disk_bytes(store.home))
        print(f"  promoted {i + 1}/{n}", end="\r", flush=True)
    return sizes


def entropy(a: Path, b: Path) -> float:
    """Sum over bit positions of the binary entropy of that bit flipping between two versions, over raw bits."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    bits = total = 0.0
    for f in sorted(a.glob("*.safetensors")):
        x, y = load_file(str(f)), load_file(str(b / f.name))
        for n in x:
            w = x[n].element_size()
            raw = [t.contiguous().view(ints[w]).numpy().view(f"u{w}") for t in (x[n], y[n])]
            xor = np.bitwise_xor(*raw).reshape(-1)
            total += xor.size * w * 8
            for k in range(w * 8):
                p = float(((xor >> k) & 1).mean())
                bits += 0.0 if p in (0.0, 1.0) else -(p * np.log2(p) + (1 - p) * np.log2(1 - p)) * xor.size
    return bits / total


def run(kind: str, args: argparse.Namespace) -> None:
    from safetensors.torch import load_file

    from governance.blobs import BlobStore
    from governance.ledger import Ledger, chain, champion, versions
    from governance.tensorstore import TensorStore, version_blobs
    from update_pipeline.architectures import build
    from update_pipeline.demo import APPROVER, _demo_service

    dtype = "bfloat16" if kind == "full-bf16" else "float32"
    with tempfile.TemporaryDirectory(prefix="weightgate-ledger-") as tmp:
        work = Path(tmp)
        base = build("gpt2", work / "base", dtype=dtype, epochs=0, hidden=args.width, layers=args.layers,
                     vocab=args.vocab)
        ckpt = sum(p.stat().st_size for p in base.glob("*.safetensors"))
        store = fresh_store(work)
        before = disk_bytes(store.home)
        sizes = promote_updates(store, base, args.versions, kind == "lora", args.records, work)
        entries = Ledger.of(store).entries()
        made = versions(entries)
        blobs = BlobStore(store.blobs_dir)
        named = set().union(*(version_blobs(e.predicate["weights"]) for v, e in made.items() if v))
        ledger = sum(blobs.path(b).stat().st_size for b in named - version_blobs(made[0].predicate["weights"]))
        n = args.versions
        print(f"[{kind}] checkpoint {ckpt / 1e6:.1f} MB ({dtype}), {n} promoted versions")
        print(f"[{kind}] whole store / {n} checkpoints = {(sizes[-1] - before) / (n * ckpt):.2f}  (goal <= 1.0; "
              f"{(sizes[-1] - before) / 1e6:.0f} MB, the store's own files before the first update excluded)")
        goal = {"full-fp32": 0.7, "full-bf16": 0.6}.get(kind)
        print(f"[{kind}] ledger / {n} checkpoints      = {ledger / (n * ckpt):.2f}"
              + (f"  (goal <= {goal}; the blobs the {n} promotions added, the base's keyframe left out)"
                 if goal else ""))
        if kind == "lora":
            added = [(b - a) / ckpt for a, b in zip(sizes[1:-1], sizes[2:], strict=True)]
            print(f"[{kind}] store bytes one LoRA version adds / checkpoint: max {max(added):.3f}, median "
                  f"{statistics.median(added):.3f}  (goal <= 0.05 each; the first update is left out: it also "
                  "stores the base)")

        svc = _demo_service(store)
        signers = svc.signers([APPROVER])  # unlocked once
        from update_pipeline.promote import rollback

        copy = statistics.median(_time(lambda: _copy(base, work / "copy")) for _ in range(args.repeat))
        recent = sorted(made)[-2:]  # the last K=2 versions (the champion among them): back and forth
        times = []
        for v in [recent[i % len(recent)] for i in range(args.repeat)]:
            times.append(_time(lambda v=v: rollback(store, v, signers)))
        if champion(Ledger.of(store).entries()) != max(made):
            rollback(store, max(made), signers)
        print(f"[{kind}] rollback to one of the last 2 versions / copy of the checkpoint = "
              f"{statistics.median(times) / copy:.1f}  (goal <= 1.5)")

        tensors = TensorStore(blobs)
        first = next(iter(sorted(base.glob("*.safetensors"))))
        t_read = statistics.median(_time(lambda: [t.sum() for t in load_file(str(first)).values()])
                                   for _ in range(args.repeat))
        rng = random.Random(0)
        older = [v for v in made if v < max(made) - 2] or sorted(made)  # not among the last K=2 and the champion
        picks = [rng.choice(older) for _ in range(args.repeat)]
        t_restore = statistics.median(_time(lambda v=v: tensors.restore(chain(entries, v), work / f"r{rng.random()}"))
                                      for v in picks)
        print(f"[{kind}] restore of a random older version / (load_file + read) = {t_restore / t_read:.1f}  "
              f"(goal <= 3; the read is from the page cache), / copy of the checkpoint = {t_restore / copy:.1f}")
        assert champion(Ledger.of(store).entries()) == max(made)


def _copy(folder: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    for p in folder.glob("*.safetensors"):
        shutil.copyfile(p, dest / p.name)


def _time(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--records", type=int, default=16, help="update records per version")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kind", choices=["full-fp32", "full-bf16", "lora", "all"], default="all")
    args = ap.parse_args()
    for kind in (["full-fp32", "full-bf16", "lora"] if args.kind == "all" else [args.kind]):
        run(kind, args)


if __name__ == "__main__":
    main()
