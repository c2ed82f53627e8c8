"""Commands that change or read the ledger: approve, reject, promote, rollback, ledger show/verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from update_pipeline import _cli_shared as shared

ledger_app = typer.Typer(no_args_is_help=True, help="Show or verify the ledger of model versions.")
audit_app = typer.Typer(no_args_is_help=True, help="Export the audit trail, or verify an exported bundle offline.")


def _print_status(status) -> None:  # noqa: ANN001
    typer.echo(status.describe())
    for why in status.refused:
        typer.echo(f"  not counted: {why}")


def approve(
    proposal: str,
    by: Annotated[str, typer.Option(help="Approver key name.")],
    comment: Annotated[str, typer.Option(help="Kept in the signed approval.")] = "",
) -> None:
    """Sign an approval of the proposal's current report (approver keys only, never the proposer's)."""
    from update_pipeline.promote import decide

    _print_status(decide(shared.store(), proposal, by, shared.passphrase(by), "approve", comment))


def reject(
    proposal: str,
    by: Annotated[str, typer.Option(help="Approver key name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the signed rejection.")],
) -> None:
    """Sign a rejection; a rejected proposal cannot be promoted."""
    from update_pipeline.promote import decide

    _print_status(decide(shared.store(), proposal, by, shared.passphrase(by), "reject", reason))


def promote(proposal: str) -> None:
    """Make a checked, approved proposal the champion: ledger entry, MLflow version, alias 'champion'."""
    from rich.console import Console

    from update_pipeline.promote import promote as do_promote

    with Console(stderr=True).status("storing weights, appending to the ledger, registering in MLflow"):
        done = do_promote(shared.store(), proposal, shared.tracking_uri())
    typer.echo(f"promoted {proposal} as ledger:{done.version} (champion); entry {done.entry[:16]}; "
               f"{done.status.describe()}")


def rollback(to: Annotated[int, typer.Option("--to", help="Ledger version to restore.")]) -> None:
    """Make an earlier version the champion again, restored bit for bit."""
    from update_pipeline.promote import rollback as do_rollback

    entry, folder = do_rollback(shared.store(), to, shared.tracking_uri())
    typer.echo(f"champion is ledger:{to} again (entry {entry.seq}); weights verified at {folder}")


def _print_unlearned(done) -> None:  # noqa: ANN001
    typer.echo(f"method: {done.method}; affected versions: {done.affected}; replayed: {done.replayed or 'nothing'}")
    if done.removed:
        typer.echo(f"records removed and crypto-shredded (hashes): {', '.join(h[:16] for h in done.removed)}")
    if done.proposal:
        typer.echo(f"new proposal {done.proposal.id}: check it, approve it, then promote it")
    if done.problem:
        typer.echo(f"no replay proposal: {done.problem}", err=True)
        raise typer.Exit(1)


def _unlearn(by: str | None, plan, act) -> None:  # noqa: ANN001
    """Print the plan, then act with the proposer key's passphrase and print what was done."""
    from update_pipeline.unlearn import default_proposer

    store = shared.store()
    who = default_proposer(store, by)
    typer.echo(f"plan: {plan(store).describe()}", err=True)
    _print_unlearned(act(store, who, shared.passphrase(who)))


def revert(
    version: int,
    exact: Annotated[bool, typer.Option("--exact/--approximate",
                                        help="Replay later updates without it, or subtract its delta.")] = True,
    by: Annotated[str | None, typer.Option(help="Proposer key for the resulting proposal.")] = None,
) -> None:
    """Unlearn one update: propose the champion without ledger:VERSION."""
    from update_pipeline import unlearn

    _unlearn(by, lambda s: unlearn.plan_revert(s, version, exact),
             lambda s, who, secret: unlearn.revert(s, version, exact, who, secret, shared.tracking_uri()))


def forget(
    record_id: Annotated[str | None, typer.Option(help="The record's id.")] = None,
    text: Annotated[str | None, typer.Option(help="Forget every record containing this text.")] = None,
    by: Annotated[str | None, typer.Option(help="Proposer key for the replay proposal.")] = None,
) -> None:
    """A data-subject request: crypto-shred the records and propose an exact replay without them."""
    from update_pipeline import unlearn

    _unlearn(by, lambda s: unlearn.plan_forget(s, record_id, text),
             lambda s, who, secret: unlearn.forget(s, record_id, text, who, secret, shared.tracking_uri()))


@ledger_app.command("show")
def ledger_show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List ledger entries: action, version, champion, proposal, approvers."""
    from rich.console import Console
    from rich.table import Table

    from update_pipeline.views import ledger_rows

    rows = ledger_rows(shared.store())
    if as_json:
        shared.emit(rows)
        return
    table = Table(title="weightgate ledger")
    for col in ("seq", "action", "version", "champion", "proposal", "approvers", "entry digest"):
        table.add_column(col, no_wrap=col in ("proposal", "entry digest"))
    for r in rows:
        table.add_row(str(r["seq"]), r["action"], str(r["version"]), str(r["champion"]), r["proposal"] or "-",
                      ", ".join(r["approvers"]) or "-", r["digest"][:16])
    Console().print(table)


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Walk the chain, every signature and every blob; exit 1 naming the first bad entry."""
    from update_pipeline.audit import verify_store

    summary = verify_store(shared.store())
    typer.echo(f"ledger verifies: {summary['entries']} entries, {summary['blobs']} blobs, "
               f"champion ledger:{summary['champion']}")


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option(help="Folder to write the bundle into (new or empty).")]) -> None:
    """Write ledger entries, attestations, public keys and a README for an auditor."""
    from update_pipeline.audit import export

    path = export(shared.store(), out)
    typer.echo(f"audit bundle written to {path}")


@audit_app.command("verify")
def audit_verify(
    path: Path,
    trust: Annotated[Path | None, typer.Option(help="Pinned public keys (keys.json format) to trust.")] = None,
) -> None:
    """Check a bundle offline, with no store: checksums, chain, signatures, reports, approvals."""
    from governance.audit_bundle import verify_bundle

    s = verify_bundle(path, trust)
    typer.echo(f"bundle verifies: {s['entries']} ledger entries, {s['attestations']} attestations, "
               f"champion ledger:{s['champion']}")
    if not s["pinned_keys"]:
        typer.echo("note: checked against the bundle's own keys.json; pass --trust to pin keys", err=True)


def register(app: typer.Typer) -> None:
    for fn in (approve, reject, promote, rollback, revert, forget):
        app.command()(fn)
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(audit_app, name="audit")
