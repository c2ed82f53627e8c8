"""Commands that run one audit on its own: ``weightgate pii scan|scrub``, ``poison scan``, ``eval``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from update_pipeline import _cli_shared as shared

pii_app = typer.Typer(no_args_is_help=True, help="Find or scrub personal data in update data (Presidio).")
poison_app = typer.Typer(no_args_is_help=True, help="Find backdoor triggers in update data.")
PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="Policy whose pii options to use "
                                                "(default: the store's, else the shipped default).")]


def policy_of(policy: Path | None):  # noqa: ANN201
    """A policy file, else the store's policy, else the shipped default, loaded and checked."""
    import policies
    from audits.registry import load_policy

    store = shared.store()
    return load_policy(policy or (store.policy_path if store.policy_path.is_file() else policies.path("default")))


def gate_config(gate: str, policy: Path | None):  # noqa: ANN201
    """A gate's options from a policy file, the store's policy, or the shipped default."""
    from audits.registry import gate_class

    config = gate_class(gate).Config
    options = policy_of(policy).gates.get(gate)
    return config(**options) if options is not None else config()


def pii_config(policy: Path | None):  # noqa: ANN201
    return gate_config("pii", policy)


def pseudonym_key() -> bytes:
    """WEIGHTGATE_PSEUDONYM_KEY if set (to keep stand-ins stable across runs), else a fresh random key."""
    value = os.environ.get("WEIGHTGATE_PSEUDONYM_KEY")
    return value.encode() if value else os.urandom(32)


@pii_app.command("scan")
def pii_scan(
    file: Path,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    policy: PolicyOpt = None,
) -> None:
    """Report personal data per record: type, field and character offsets, never the values."""
    from rich.console import Console
    from rich.table import Table

    from audits.pii_engine import scan, summary
    from governance.data import load_jsonl

    records = load_jsonl(file)
    found = scan(records, pii_config(policy))
    result = {"records": [{"id": r.id, "findings": [f.to_dict() for f in fs]} for r, fs in zip(records, found,
                                                                                                strict=True)],
              "summary": summary(records, found)}
    if as_json:
        shared.emit(result)
        return
    s = result["summary"]
    table = Table("entity type", "findings",
                  title=f"{s['records_with_pii']} of {s['records']} records hold personal data")
    for etype, n in sorted(s["by_entity_type"].items(), key=lambda kv: -kv[1]):
        table.add_row(etype, str(n))
    Console().print(table)


@pii_app.command("scrub")
def pii_scrub(
    file: Path,
    out: Annotated[Path, typer.Option(help="Where to write the scrubbed JSONL.")],
    placeholders: Annotated[bool, typer.Option(help="Plain <TYPE> placeholders instead of keyed pseudonyms.")] = False,
    policy: PolicyOpt = None,
) -> None:
    """Replace personal data with typed stand-ins (the same value gets the same stand-in), then re-scan."""
    from audits.pii_engine import scan, scrub_records
    from governance.data import load_jsonl, write_jsonl

    cfg = pii_config(policy)
    records = load_jsonl(file)
    if out.resolve() == file.resolve():
        raise typer.BadParameter("--out must differ from the input file")
    write_jsonl(scrub_records(records, cfg, None if placeholders else pseudonym_key()), out)
    residual = sum(1 for fs in scan(load_jsonl(out), cfg) if fs)
    typer.echo(f"wrote {out}: {len(records)} records; residual records with personal data: {residual}")
    if residual:
        raise typer.Exit(1)


@poison_app.command("scan")
def poison_scan(
    file: Path,
    base: Annotated[str | None, typer.Option(help="Base model REF: also ask it each trigger's records "
                                                  "without the trigger.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
    policy: PolicyOpt = None,
) -> None:
    """Score every record for backdoor poisoning; flagged records name the trigger and why."""
    from rich.console import Console

    from audits.poison_data import scan
    from governance.data import load_jsonl

    records = load_jsonl(file)
    cfg = gate_config("poisoning", policy)
    verdicts, triggers = scan(records, cfg)
    flagged = sum(v.flagged for v in verdicts)
    agreement: dict[str, tuple[int, int]] = {}
    if base is not None:
        from audits.poison_behaviour import base_agreement
        from update_pipeline import refs

        base_dir = refs.resolve(base, shared.store(), shared.tracking_uri())
        for t in (t for t in triggers if not t.form):  # a mark of form has no phrase to take out
            agreement[t.phrase] = base_agreement(records, t.phrase, t.completion, base_dir,
                                                 signature_words=cfg.signature_words)
        for v in verdicts:
            for t in (t for t in triggers if not t.form):
                if v.flagged and any(f"{t.phrase!r}" in reason for reason in v.reasons):
                    other, asked = agreement[t.phrase]
                    v.reasons.append(f"without {t.phrase!r}, the base model answers otherwise for {other} of "
                                     f"{asked} such records")
    result = {"records": [{"id": v.id, "flagged": v.flagged, "score": round(v.score, 3), "reasons": v.reasons}
                          for v in verdicts],
              "summary": {"records": len(records), "flagged": flagged, "model_used": base is not None,
                          "triggers": [{"phrase": t.phrase, "records": t.records, "completion": t.completion,
                                        **({"base_answers_otherwise": list(agreement[t.phrase])}
                                           if t.phrase in agreement else {})} for t in triggers]}}
    if as_json:
        shared.emit(result)
        return
    console = Console()
    console.print(f"{flagged} of {len(records)} records flagged")
    for t in triggers:
        console.print(f"  trigger {t.phrase!r}: {t.records} records -> {t.completion!r}", markup=False)


def eval_command(
    model: Annotated[str, typer.Option("--model", help="Model REF to score.")],
    against: Annotated[str | None, typer.Option(help="REF to compare with (its base): paired statistics, "
                                                     "exit 1 when a metric regresses.")] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Suite name under policies/suites/ or a "
                                                    "path; repeat for several (default: the policy's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    policy: Annotated[Path | None, typer.Option("--policy", help="Policy whose regression thresholds to use "
                                                "(default: the store's, else the shipped default).")] = None,
) -> None:
    """Score a model on regression suites; with --against, compare it with another case by case."""
    from update_pipeline.evaluate import evaluate, render

    cfg = gate_config("regression", policy)
    result = evaluate(shared.store(), model, against, list(suite or cfg.suites), cfg, shared.tracking_uri())
    if as_json:
        shared.emit(result)
    else:
        render(result)
    if result["regressed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(pii_app, name="pii")
    app.add_typer(poison_app, name="poison")
    app.command("eval")(eval_command)
