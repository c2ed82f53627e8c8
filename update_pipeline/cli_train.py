"""`weightgate train`: fine-tune a base on update data, the way the ledger can replay it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from update_pipeline import _cli_shared as shared
from update_pipeline import cli_audits


def train(
    base: Annotated[str, typer.Option(help="Base model REF.")],
    data: Annotated[Path, typer.Option(help="Update data (JSONL).")],
    out: Annotated[Path, typer.Option(help="Folder for the update.")],
    lora: Annotated[bool, typer.Option(help="Train a LoRA adapter instead of full weights.")] = False,
    epochs: Annotated[int, typer.Option(min=1, show_default=False, help="Passes over the data (default: 1).")] = 1,
    seed: Annotated[int, typer.Option(show_default=False, help="Seed of the shuffling and the initial LoRA "
                                      "factors (default: 0).")] = 0,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the policy's training.lr, else 3e-4, "
                                             "1e-3 with --lora).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Records per optimizer step (default: the policy's "
                                                   "training.batch_size, 8).")] = None,
    max_len: Annotated[int | None, typer.Option(min=1, help="Tokens a record is cut to (default: the policy's "
                                                "training.max_len, else the model's context, at most 256).")] = None,
    progress_every: Annotated[int, typer.Option(min=0, show_default=False, help="When stderr is not a terminal "
                                                "(a CI log), print a progress line every N steps (default: 0, "
                                                "about 20 lines a run); a terminal shows a bar.")] = 0,
    holdout: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of records held out as the "
                                           "update's probe set (checked for forgetting later).")] = 0.1,
    lora_targets: Annotated[str | None, typer.Option(help="Comma-separated module names for LoRA, or all-linear "
                                                     "(default: the policy's training.lora_targets, else PEFT's "
                                                     "default for the architecture).")] = None,
    device: Annotated[str | None, typer.Option(help=shared.DEVICE_HELP + " (default: the policy's "
                                               "training.device)")] = None,
) -> None:
    """Fine-tune REF on the data (deterministic) and write safetensors to OUT, in the model's own dtype.

    Its recipe (every setting below) is written with it, so the ledger can replay the run exactly. The data
    is scrubbed of personal data first unless the policy's pii gate says scrub_before_training: false; the
    scrubbed file is written next to OUT."""
    from governance.data import load_jsonl
    from update_pipeline import refs
    from update_pipeline.train import train_update

    store = shared.store()
    base_dir = refs.resolve(base, store, shared.tracking_uri())  # type: ignore[arg-type]
    records = load_jsonl(data)
    cfg = cli_audits.pii_config(None)
    if cfg.scrub_before_training:
        from audits.pii_engine import scrub_records
        from governance.data import write_jsonl

        scrubbed = write_jsonl(scrub_records(records, cfg, cli_audits.pseudonym_key()),
                               out.with_name(out.name + ".scrubbed.jsonl"))
        typer.echo(f"trained on scrubbed data {scrubbed}: propose with --data {scrubbed}", err=True)
        records = load_jsonl(scrubbed)
    training = cli_audits.policy_of(None).training
    shared.use_device(device or training.device)
    targets = [t.strip() for t in lora_targets.split(",") if t.strip()] if lora_targets else training.lora_targets
    recipe = train_update(base_dir, base, records, out, lora=lora, epochs=epochs, seed=seed, holdout=holdout,
                          targets=targets, lr=lr if lr is not None else training.lr,
                          batch_size=batch_size or training.batch_size, max_len=max_len or training.max_len,
                          progress_every=progress_every)
    typer.echo(f"wrote {'LoRA adapter' if lora else 'model'} to {out} (final loss {recipe['final_loss']:.3f}; "
               f"{recipe['probe_records']} records held out as its probe set)")


def register(app: typer.Typer) -> None:
    app.command()(train)
