"""`check` at real size: a GPT-2-small-sized model (124M parameters) built from its config, and the demo's model.

For each model, in this run: the time of one forward+backward pass over the update's data (the
batches ``weightgate train`` uses), then a full fine-tune's ``check`` under the world policy (the default
with the demo world's regression suite, the costliest shipped) on a fresh store. Prints each gate's wall
time and check / (forward+backward) (goal at 124M on this
2-core CPU: at most 10x). ``--small`` uses a 4-layer 256-wide model instead of 124M (what CI and
``bench/gpu_check.sh`` on a machine without a GPU run); ``--arch llama`` a Llama-architecture model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def build(arch: str, dest: Path, size: str, dtype: str) -> Path:
    """A model of `arch` from its config, untrained (timing is what is measured), its output layer as wide
    as a real vocabulary's (most of the cost of scoring)."""
    from update_pipeline.architectures import build as build_arch

    hidden, layers = {"124m": (768, 12), "small": (256, 4), "tiny": (64, 2), "1b": (2048, 16)}[size]
    vocab = None if size in ("small", "tiny") else (50257 if arch == "gpt2" else 32000)
    return build_arch(arch, dest, dtype=dtype, epochs=0, hidden=hidden, layers=layers, vocab=vocab)


def forward_backward(model_dir: Path, records: list, batch: int = 8) -> float:
    """Seconds for one pass of forward and backward over `records`, as training batches them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audits.lm import resolve_device
    from update_pipeline.train import _examples

    dev = resolve_device()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev).train()
    data = _examples(tok, records, 256)
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        rows = data[i:i + batch]
        width = max(len(x) for x, _ in rows)
        ids = torch.tensor([x + [tok.eos_token_id] * (width - len(x)) for x, _ in rows], device=dev)
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows], device=dev)
        model(input_ids=ids, labels=labels).loss.backward()
    if dev == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def check_once(model_dir: Path, data: Path, work: Path) -> tuple[float, dict]:
    """Train one epoch (not timed), propose on a fresh store, and time `check`."""
    import policies
    from governance.data import load_jsonl
    from governance.store import Store
    from update_pipeline.check import check
    from update_pipeline.demo import PROPOSER, _demo_service, _ensure_trust
    from update_pipeline.intake import propose
    from update_pipeline.train import train_update

    store = Store.locate(work / "home")
    store.init(policies.path("world"))
    _ensure_trust(store, lambda _m: None)
    _demo_service(store).apply_policy(policies.path("world"), ["demo-admin"])
    cand = work / "candidate"
    train_update(model_dir, str(model_dir), load_jsonl(data), cand, epochs=1, seed=0)
    p = propose(store, str(model_dir), cand, data, PROPOSER, "demo-passphrase")
    start = time.perf_counter()
    report = check(store, p.id).report
    return time.perf_counter() - start, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a 4-layer 256-wide model instead of 124M parameters")
    ap.add_argument("--arch", default="gpt2", choices=["gpt2", "llama", "qwen2"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--size", default=None, choices=["124m", "small", "tiny", "1b"], help="overrides --small")
    ap.add_argument("--records", type=int, default=200, help="records in the update's data")
    ap.add_argument("--skip-demo", action="store_true", help="only the larger model")
    args = ap.parse_args()

    import torch

    from governance.data import load_jsonl, write_jsonl
    from update_pipeline import world

    size = args.size or ("small" if args.small else "124m")
    with tempfile.TemporaryDirectory(prefix="weightgate-scale-") as tmp:
        tmp = Path(tmp)
        cs = world.countries(n=24 + (args.records + 3) // 4)[24:]
        data = write_jsonl(world.fact_records(cs, "curated")[:args.records], tmp / "update.jsonl")
        records = load_jsonl(data)
        models = [(f"{args.arch} {size} {args.dtype}", build(args.arch, tmp / "model", size, args.dtype))]
        if not args.skip_demo:
            models.append(("demo world model", world.build_base_model(tmp / "demo")))
        print(f"device {os.environ.get('WEIGHTGATE_DEVICE', 'auto')}, torch threads {torch.get_num_threads()}, "
              f"{len(records)} update records")
        for label, folder in models:
            from transformers import AutoConfig

            conf = AutoConfig.from_pretrained(folder)
            from transformers import AutoModelForCausalLM

            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(conf).parameters())
            fb = forward_backward(folder, records)
            took, report = check_once(folder, data, tmp / f"work-{len(label)}")
            print(f"\n{label}: {params / 1e6:.1f}M parameters")
            for g in report["gates"]:
                print(f"  {g['name']:<16} {g['status']:<6} {g['duration_s']:8.1f} s")
            print(f"  forward+backward over the data: {fb:.1f} s; check: {took:.1f} s ({took / 60:.1f} min)")
            print(f"  check / (forward+backward) = {took / fb:.1f}x (goal at 124M: <= 10x); "
                  f"verdict {report['verdict']}")


if __name__ == "__main__":
    main()
