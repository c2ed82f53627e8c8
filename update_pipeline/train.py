"""Training updates: continual fine-tuning of a causal LM on CPU, full or LoRA.

Seeded and deterministic (same inputs, same thread count, same bits). Prompt tokens are
masked out of the loss for prompt/completion records. Writes safetensors plus a
``weightgate-recipe.json`` holding everything needed to replay the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.data import DataRecord, probe_split

if TYPE_CHECKING:
    import torch

RECIPE = "weightgate-recipe.json"
HOLDOUT = 0.1
LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]


def _examples(tokenizer: Any, records: Sequence[DataRecord], max_len: int) -> list[tuple[list[int], list[int]]]:
    eos = tokenizer.eos_token_id
    out = []
    for r in records:
        if "text" in r.fields:
            ids = tokenizer(r.fields["text"])["input_ids"] + [eos]
            labels = list(ids)
        else:
            p = tokenizer(r.fields["prompt"])["input_ids"]
            c = tokenizer(r.fields["completion"])["input_ids"] + [eos]
            ids, labels = p + c, [-100] * len(p) + c
        out.append((ids[:max_len], labels[:max_len]))
    return out


def fit(model: torch.nn.Module, tokenizer: Any, records: Sequence[DataRecord], *, epochs: int, lr: float,
        batch_size: int, seed: int, max_len: int = 128, desc: str = "training") -> list[float]:
    """AdamW over shuffled padded batches; returns the loss per step."""
    import torch
    from rich.console import Console
    from rich.progress import Progress

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    data = _examples(tokenizer, records, max_len)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    losses: list[float] = []
    model.train()
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(desc, total=steps)
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=gen).tolist()
            for i in range(0, len(order), batch_size):
                batch = [data[j] for j in order[i:i + batch_size]]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
                labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
                mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                bar.update(task, advance=1, description=f"{desc} loss {losses[-1]:.3f}")
    model.eval()
    return losses


def train_update(base_dir: Path, base_ref: str, records: Sequence[DataRecord], out: Path, *, lora: bool = False,
                 epochs: int = 3, seed: int = 0, lr: float | None = None, batch_size: int = 8,
                 holdout: float = HOLDOUT) -> dict[str, Any]:
    """Fine-tune the model in `base_dir` on `records` and write the update to `out`. A `holdout`
    share of the records (governance.data.probe_split) is split off first and never trained on:
    the update's probe set, on which later updates are checked for forgetting it."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lr = lr if lr is not None else (1e-3 if lora else 3e-4)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, trust_remote_code=False)
    if lora:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS, fan_in_fan_out=True)
        model = get_peft_model(model, cfg)
    max_len = min(256, getattr(model.config, "n_positions", 256))
    trained, probe = probe_split(list(records), holdout)
    losses = fit(model, tokenizer, trained, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                 max_len=max_len, desc="lora" if lora else "fine-tune")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if not lora:
        tokenizer.save_pretrained(out)
    recipe = {"base": base_ref,  # no record ids or plain hashes: the recipe is kept in the signed ledger
              "records": len(records), "trained_records": len(trained), "holdout": holdout,
              "probe_records": len(probe), "lora": lora, "epochs": epochs, "seed": seed, "lr": lr,
              "batch_size": batch_size, "final_loss": losses[-1] if losses else None,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "threads": torch.get_num_threads()}
    (out / RECIPE).write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe
