"""Training updates: continual fine-tuning of any causal LM transformers ships, full or LoRA.

Seeded and deterministic (same inputs, device, thread count: same bits). Prompt tokens are
masked out of the loss for prompt/completion records. On CPU the model trains in float32 and
is saved back in the dtype it came in (bf16 stays bf16 on disk); on a GPU it trains in its own
dtype (fp16 in float32). LoRA targets: the caller's, or PEFT's default for the architecture,
or every linear layer; ``fan_in_fan_out`` only for GPT-2-style Conv1D layers. A sharded base
gives a candidate sharded the same way. Writes safetensors plus a ``weightgate-recipe.json``
holding everything needed to replay the run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.data import DataRecord, probe_split
from governance.errors import UsageError

if TYPE_CHECKING:
    import torch

RECIPE = "weightgate-recipe.json"
INDEX = "model.safetensors.index.json"
HOLDOUT = 0.1


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


class _Lines:
    """Progress when stderr is not a terminal (a CI log): one plain line every `every` steps and a last one."""

    def __init__(self, desc: str, steps: int, epochs: int, every: int) -> None:
        self.desc, self.steps, self.epochs = desc, steps, epochs
        self.every = every if every > 0 else max(1, steps // 20)
        self.start = time.monotonic()

    def step(self, n: int, epoch: int, loss: float) -> None:
        if n % self.every == 0:
            self._say(f"step {n}/{self.steps} epoch {epoch}/{self.epochs} loss {loss:.3f}")

    def done(self, losses: list[float]) -> None:
        last = f", final loss {losses[-1]:.3f}" if losses else ""
        self._say(f"done: {len(losses)} steps, {self.epochs} epoch{'s' * (self.epochs != 1)}{last}")

    def _say(self, what: str) -> None:
        print(f"{self.desc}: {what} ({time.monotonic() - self.start:.1f} s)", file=sys.stderr, flush=True)


def fit(model: torch.nn.Module, tokenizer: Any, records: Sequence[DataRecord], *, epochs: int, lr: float,
        batch_size: int, seed: int, max_len: int = 128, desc: str = "training",
        progress_every: int = 0) -> list[float]:
    """AdamW over shuffled padded batches; returns the loss per step. Progress goes to stderr: a bar on a
    terminal, else a line every `progress_every` steps (0: about 20 lines a run) and one at the end."""
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
    dev = next(model.parameters()).device
    model.train()
    lines = None if sys.stderr.isatty() else _Lines(desc, steps, epochs, progress_every)
    with Progress(console=Console(stderr=True), transient=True, disable=lines is not None) as bar:
        task = bar.add_task(desc, total=steps)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(data), generator=gen).tolist()
            for i in range(0, len(order), batch_size):
                batch = [data[j] for j in order[i:i + batch_size]]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
                labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
                mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
                loss = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                bar.update(task, advance=1, description=f"{desc} loss {losses[-1]:.3f}")
                if lines is not None:
                    lines.step(len(losses), epoch, losses[-1])
    if lines is not None:
        lines.done(losses)
    model.eval()
    return losses


def lora_targets(model: Any, targets: Sequence[str] | None) -> tuple[list[str] | str, bool]:
    """(target modules, fan_in_fan_out): the given ones, PEFT's default for the architecture, or every
    linear layer; fan_in_fan_out when the targeted layers are Conv1D (GPT-2 style)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS
    from transformers.pytorch_utils import Conv1D

    chosen: list[str] | str = list(targets) if targets else DEFAULTS.get(model.config.model_type) or "all-linear"
    if chosen == ["all-linear"]:
        chosen = "all-linear"
    named = [m for n, m in model.named_modules() if chosen == "all-linear" or n.split(".")[-1] in chosen]
    if chosen != "all-linear" and not named:
        raise UsageError(f"LoRA targets {', '.join(chosen)} name no module of this {model.config.model_type} model")
    return chosen, any(isinstance(m, Conv1D) for m in named)


def shard_like(out: Path, base_dir: Path) -> None:
    """Split `out`'s single model.safetensors into the base's shards, tensor for tensor as the base's
    index maps them (same files, same index), so each shard is compared with its own parent."""
    index = base_dir / INDEX
    if not index.is_file():
        return
    from safetensors.torch import load_file, save_file

    weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    tensors = load_file(str(out / "model.safetensors"))
    if set(tensors) != set(weight_map):
        raise UsageError(f"{out}: the trained model's tensors differ from those the base's index maps")
    for shard in sorted(set(weight_map.values())):
        save_file({n: tensors[n].contiguous() for n in sorted(tensors) if weight_map[n] == shard}, str(out / shard),
                  metadata={"format": "pt"})
    (out / "model.safetensors").unlink()
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (out / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")


def train_update(base_dir: Path, base_ref: str, records: Sequence[DataRecord], out: Path, *, lora: bool = False,
                 epochs: int = 1, seed: int = 0, lr: float | None = None, batch_size: int = 8,
                 max_len: int | None = None, holdout: float = HOLDOUT, targets: Sequence[str] | None = None,
                 device: str | None = None, progress_every: int = 0) -> dict[str, Any]:
    """Fine-tune the model in `base_dir` on `records` and write the update to `out`. A `holdout`
    share of the records (governance.data.probe_split) is split off first and never trained on:
    the update's probe set, on which later updates are checked for forgetting it. `device`: auto, cpu or
    cuda (default: WEIGHTGATE_DEVICE, which --device sets, else auto). `lr` defaults to 3e-4 (1e-3 for
    LoRA); `max_len` (tokens a record is cut to) to the model's context, at most 256: what recipes
    recorded before they named it used."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audits.lm import context_limit, resolve_device

    lr = lr if lr is not None else (1e-3 if lora else 3e-4)
    for name, value in (("epochs", epochs), ("batch size", batch_size), ("max length", max_len)):
        if value is not None and value < 1:
            raise UsageError(f"{name} {value}: give at least 1")
    if not lr > 0:
        raise UsageError(f"learning rate {lr}: give a positive number")
    where = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto", trust_remote_code=False)
    stored = model.dtype
    work = stored if where == "cuda" and stored != torch.float16 else torch.float32
    model = model.to(device=where, dtype=work)
    chosen: list[str] | str | None = None
    if lora:
        from peft import LoraConfig, get_peft_model

        chosen, conv1d = lora_targets(model, targets)
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=chosen, fan_in_fan_out=conv1d)
        model = get_peft_model(model, cfg)
    limit = context_limit(model)
    if max_len is not None and max_len > limit:
        raise UsageError(f"max length {max_len}: longer than the model's context ({limit} tokens)")
    max_len = min(256, limit) if max_len is None else max_len
    trained, probe = probe_split(list(records), holdout)
    losses = fit(model, tokenizer, trained, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                 max_len=max_len, desc="train lora" if lora else "train", progress_every=progress_every)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu")
    if lora:
        model.save_pretrained(out)
    else:
        model.to(stored).save_pretrained(out, max_shard_size="1000GB")
        shard_like(out, base_dir)
        tokenizer.save_pretrained(out)
    recipe = {"base": base_ref,  # no record ids or plain hashes: the recipe is kept in the signed ledger
              "records": len(records), "trained_records": len(trained), "holdout": holdout,
              "probe_records": len(probe), "lora": lora, "epochs": epochs, "seed": seed, "lr": lr,
              "batch_size": batch_size, "max_len": max_len, "final_loss": losses[-1] if losses else None,
              "dtype": str(stored).removeprefix("torch."), "device": where,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "threads": torch.get_num_threads()}
    if lora:
        recipe["lora_targets"] = chosen
    (out / RECIPE).write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe
