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
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    holdout: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of records held out as the "
                                           "update's probe set (checked for forgetting later).")] = 0.1,
    lora_targets: Annotated[str | None, typer.Option(help="Comma-separated module names for LoRA, or all-linear "
                                                     "(default: the policy's training.lora_targets, else PEFT's "
                                                     "default for the architecture).")] = None,
    device: Annotated[str | None, typer.Option(help=shared.DEVICE_HELP + " (default: the policy's "
                                               "training.device)")] = None,
) -> None:
    """Fine-tune REF on the data (deterministic) and write safetensors to OUT, in the model's own dtype.

    The data is scrubbed of personal data first unless the policy's pii gate says
    scrub_before_training: false; the scrubbed file is written next to OUT."""
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
                          targets=targets)
    typer.echo(f"wrote {'LoRA adapter' if lora else 'model'} to {out} (final loss {recipe['final_loss']:.3f}; "
               f"{recipe['probe_records']} records held out as its probe set)")


def register(app: typer.Typer) -> None:
    app.command()(train)
