"""Ledger storage: restore speed and size for 20 promoted versions, as ratios measured in this run.

Builds a GPT-2-style model of at least 50 MB, makes 20 chained updates (full fine-tunes,
then LoRA updates merged into full weights), stores each as the ledger does at promotion
(keyframes every K versions, XOR deltas in between, zstd), and prints:
  restore of a random old version / safetensors.torch.load_file of a full checkpoint (goal <= 1.5)
  ledger bytes / 20 full checkpoints (goal <= 0.6)
load_file maps the file lazily, so the script also prints restore / (load_file + reading every tensor).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(width: int, layers: int):  # noqa: ANN201
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=width, n_layer=layers, n_head=8, vocab_size=8192, n_positions=128,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def updates(model, n: int, lora: bool, steps: int, lr: float, out: Path):  # noqa: ANN001, ANN201
    """Yield n folders, each the model after one more (full or LoRA-merged) fine-tune."""
    import torch

    gen = torch.Generator().manual_seed(1)
    for i in range(n):
        work = model
        if lora:
            from peft import LoraConfig, get_peft_model

            work = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"],
                                                    fan_in_fan_out=True, lora_dropout=0.0))
        opt = torch.optim.AdamW([p for p in work.parameters() if p.requires_grad], lr=lr)
        for _ in range(steps):
            ids = torch.randint(0, 8192, (4, 64), generator=gen)
            loss = work(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        model = work.merge_and_unload() if lora else work
        folder = out / f"v{i + 1}"
        model.save_pretrained(folder)
        yield folder


def chain_of(manifests: list[dict], v: int) -> list[dict]:
    out = []
    while True:
        out.append(manifests[v])
        if manifests[v]["depth"] == 0:
            return out[::-1]
        v -= 1


def run(kind: str, args: argparse.Namespace) -> None:
    from safetensors.torch import load_file

    from governance.blobs import BlobStore
    from governance.tensorstore import TensorStore
    from update_pipeline.versions import raw_reader

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(args.width, args.layers)
        base = root / "v0"
        model.save_pretrained(base)
        size = (base / "model.safetensors").stat().st_size
        store = TensorStore(BlobStore(root / "blobs"))
        manifests = [store.put_version(base, None, None)]
        folders = [base]
        for folder in updates(model, args.versions, kind == "lora", args.steps, args.lr, root):
            manifests.append(store.put_version(folder, manifests[-1], raw_reader(folders[-1])))
            folders.append(folder)
        ledger_bytes = sum(p.stat().st_size for p in (root / "blobs").rglob("*") if p.is_file())

        ckpt = folders[-1] / "model.safetensors"
        load_file(str(ckpt))
        t_load = statistics.median(_time(lambda: load_file(str(ckpt))) for _ in range(args.repeat))
        t_read = statistics.median(_time(lambda: [t.sum() for t in load_file(str(ckpt)).values()])
                                   for _ in range(args.repeat))
        rng = random.Random(0)
        picks = [rng.randint(0, args.versions - 1) for _ in range(args.repeat)]
        t_restore = statistics.median(
            _time(lambda v=v: store.restore(chain_of(manifests, v), root / f"restored-{v}-{rng.random()}"))
            for v in picks)
        print(f"[{kind}] model {size / 1e6:.0f} MB, {args.versions} versions, keyframe every "
              f"{__import__('governance.tensorstore').tensorstore.KEYFRAME_EVERY}")
        print(f"[{kind}] restore random old version / load_file       = {t_restore / t_load:.1f}  (goal <= 1.5)")
        print(f"[{kind}] restore random old version / load_file + read = {t_restore / t_read:.1f}")
        print(f"[{kind}] ledger bytes / {args.versions} full checkpoints        = "
              f"{ledger_bytes / (args.versions * size):.2f}  (goal <= 0.6)")


def _time(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per update")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kind", choices=["full", "lora", "both"], default="both")
    args = ap.parse_args()
    for kind in (["full", "lora"] if args.kind == "both" else [args.kind]):
        run(kind, args)


if __name__ == "__main__":
    main()
