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


BY = typer.Option(help="Key that signs (repeat --by for each signer a threshold needs).")


REPORT = typer.Option(help="Digest (or prefix) of the report you read; refused if a newer one exists "
                      "(default: the newest, printed).")


def _newest(proposal: str) -> str:
    from governance.signing import sha256_hex
    from update_pipeline.promote import trusted

    proposals = trusted(shared.store())[3]
    latest = proposals.latest_report(proposals.load(proposal))
    return sha256_hex(latest[0]) if latest else ""


def approve(
    proposal: str,
    by: Annotated[str, typer.Option(help="Approver key name.")],
    comment: Annotated[str, typer.Option(help="Kept in the signed approval.")] = "",
    report: Annotated[str | None, REPORT] = None,
) -> None:
    """Sign an approval of the report you read (approver keys of the trust root, never the proposer)."""
    digest = report or _newest(proposal)
    typer.echo(f"approving report {digest[:16]} of {proposal}", err=True)
    _print_status(shared.service().approve(proposal, by, comment, digest))


def reject(
    proposal: str,
    by: Annotated[str, typer.Option(help="Approver key name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the signed rejection.")],
    report: Annotated[str | None, REPORT] = None,
) -> None:
    """Sign a rejection; a rejected proposal cannot be promoted."""
    digest = report or _newest(proposal)
    typer.echo(f"rejecting report {digest[:16]} of {proposal}", err=True)
    _print_status(shared.service().reject(proposal, by, reason, digest))


def promote(proposal: str, by: Annotated[list[str], BY]) -> None:
    """Make a checked, approved proposal the champion (signed by an operator or approver key):
    ledger entry, MLflow version, alias 'champion', signed checkpoint to the witnesses."""
    from rich.console import Console

    from update_pipeline.promote import promote as do_promote

    svc = shared.service()
    signers = svc.signers(by)  # passphrases asked before the spinner starts
    with Console(stderr=True).status("storing weights, appending to the ledger, registering in MLflow"):
        done = do_promote(svc.store, proposal, signers, svc.tracking_uri)
    typer.echo(f"promoted {proposal} as ledger:{done.version} (champion); entry {done.entry[:16]}; "
               f"{done.status.describe()}")


def rollback(
    to: Annotated[int, typer.Option("--to", help="Ledger version to restore.")],
    by: Annotated[list[str], BY],
    reason: Annotated[str, typer.Option(help="Why; kept in the signed ledger entry.")] = "",
) -> None:
    """Make an earlier version the champion again, restored bit for bit; needs the trust root's rollback
    threshold of approver or operator signatures."""
    entry, folder = shared.service().rollback(to, by, reason)
    typer.echo(f"champion is ledger:{to} again (entry {entry.seq}); weights verified at {folder}")


def _print_unlearned(done) -> None:  # noqa: ANN001
    if done.method == "approximate" and done.negated:
        typer.echo(f"method: APPROXIMATE (the weight changes of {', '.join(f'ledger:{v}' for v in done.negated)} "
                   f"subtracted; not an exact replay); affected versions: {done.affected}")
    else:
        typer.echo(f"method: {done.method}; affected versions: {done.affected}; replayed: "
                   f"{done.replayed or 'nothing'}")
    if done.removed:
        typer.echo(f"records removed and crypto-shredded (hashes): {', '.join(h[:16] for h in done.removed)}")
    if done.proposal:
        typer.echo(f"new proposal {done.proposal.id}{' (APPROXIMATE)' if done.method == 'approximate' else ''}: "
                   "check it, approve it, then promote it")
    if done.problem:
        typer.echo(f"no replay proposal: {done.problem}", err=True)
        raise typer.Exit(1)


def revert(
    version: int,
    by: Annotated[str, typer.Option(help="Approver or operator key that signs the revert request.")],
    exact: Annotated[bool, typer.Option("--exact/--approximate",
                                        help="Replay later updates without it, or subtract its delta.")] = True,
    proposer: Annotated[str | None, typer.Option(help="Proposer key for the resulting proposal (default: --by).")
                        ] = None,
) -> None:
    """Unlearn one update: a signed revert request in the ledger, then a proposal of the champion without
    ledger:VERSION (check, approve and promote it as any other)."""
    from update_pipeline import unlearn

    svc = shared.service()
    typer.echo(f"plan: {unlearn.plan_revert(svc.store, version, exact).describe()}", err=True)
    _print_unlearned(svc.revert(version, exact, by, proposer))


def forget(
    by: Annotated[str, typer.Option(help="Approver or operator key that signs the forget entry.")],
    record_id: Annotated[str | None, typer.Option(help="The record's id.")] = None,
    text: Annotated[str | None, typer.Option(help="Forget every record containing this text.")] = None,
    proposer: Annotated[str | None, typer.Option(help="Proposer key for the replay proposal (default: --by).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Only finish an interrupted forget.")] = False,
    replay: Annotated[bool, typer.Option("--replay/--no-replay", help="Propose the exact replay without the "
                                         "records (--no-replay: only tombstone the versions trained on them).")
                      ] = True,
    approximate: Annotated[bool, typer.Option("--approximate", help="Propose the champion minus the weight changes "
                                              "of the updates trained on the records (task-vector negation) "
                                              "instead of an exact replay: for updates with no training recipe; "
                                              "labelled APPROXIMATE everywhere.")] = False,
) -> None:
    """A data-subject request: tombstone every version trained on the records (the champion moves to the newest
    version they never touched), shred every copy, and propose the exact replay without them (refused, with
    nothing written, when an update trained on them has no recipe, unless --approximate or --no-replay).
    Finishes an interrupted forget first."""
    from update_pipeline import forget as forgetting

    svc = shared.service()
    if resume:
        if record_id is not None or text is not None:
            raise typer.BadParameter("--resume takes no --record-id or --text")
    elif approximate and not replay:
        raise typer.BadParameter("--approximate builds a proposal; --no-replay builds none: give one of them")
    else:
        plan = forgetting.plan_forget(svc.store, record_id, text, approximate)
        if not (plan.problem and replay):  # an impossible replay is refused below in one line
            typer.echo(f"plan: {plan.describe()}", err=True)
    done = svc.forget(record_id, text, by, proposer, replay, approximate)
    if done.tombstoned:
        typer.echo(f"tombstoned (never restored or served again): {', '.join(f'ledger:{v}' for v in done.tombstoned)}",
                   err=True)
    _print_unlearned(done)


@ledger_app.command("show")
def ledger_show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List ledger entries: action, version (and its MLflow registered version), champion, proposal, approvers."""
    from rich.console import Console
    from rich.table import Table

    from update_pipeline.registry_sync import registered_numbers
    from update_pipeline.views import ledger_rows

    rows = ledger_rows(shared.store())
    numbers = registered_numbers(shared.store(), shared.tracking_uri()) if rows else {}
    for r in rows:  # MLflow numbers its versions itself: the registered version that holds this ledger version
        r["mlflow_version"] = numbers.get(r["version"]) if r["action"] in ("genesis", "promote") else None
    if as_json:
        shared.emit(rows)
        return
    table = Table(title="weightgate ledger")
    for col in ("seq", "action", "version", "mlflow version", "champion", "proposal", "signed by", "approvers",
                "entry digest"):
        table.add_column(col, no_wrap=col in ("seq", "action", "proposal", "entry digest"))
    dash = lambda v: "-" if v is None else str(v)  # noqa: E731
    for r in rows:
        action = r["action"] + (" APPROXIMATE" if r.get("method") == "approximate" else "")
        table.add_row(str(r["seq"]), action, dash(r["version"]), dash(r["mlflow_version"]), dash(r["champion"]),
                      r["proposal"] or "-", ", ".join(r["signed_by"]), ", ".join(r["approvers"]) or "-",
                      r["digest"][:12])
    Console().print(table)


@ledger_app.command("verify")
def ledger_verify(
    deep: Annotated[bool, typer.Option("--deep", help="Also restore every version and hash its files, and check "
                                       "what each entry refers to.")] = False,
    root_fingerprint: Annotated[str | None, typer.Option(
        envvar="WEIGHTGATE_ROOT_FINGERPRINT", help="Pinned root fingerprint (default: the store's record)")] = None,
) -> None:
    """Walk the chain against its trust roots, every signature, every blob and the witnesses; exit 1 naming the
    first problem."""
    s = shared.service().verify(deep, root_fingerprint)
    typer.echo(f"ledger verifies{' (deep)' if deep else ''}: {s['entries']} entries, {s['blobs']} blobs, "
               f"champion ledger:{s['champion']}, trust root v{s['root_version']} ({s['root_fingerprint'][:16]}); "
               f"witnesses: {', '.join(s['witnesses'])}")
    if not root_fingerprint:
        typer.echo("note: " + ("anchored on the store's own record of the root fingerprint" if s["anchored"]
                               else "no root fingerprint is pinned") + "; pin it outside the store with "
                   "WEIGHTGATE_ROOT_FINGERPRINT", err=True)


@ledger_app.command("checkpoint")
def ledger_checkpoint(by: Annotated[list[str], BY]) -> None:
    """Sign the ledger's head again and publish it to every witness (after an interrupted write)."""
    n = shared.service().checkpoint(by)
    typer.echo(f"checkpoint of ledger entry {n} published")


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option(help="Folder to write the bundle into (new or empty).")]) -> None:
    """Write ledger entries, attestations, public keys and a README for an auditor."""
    from governance.ledger import Ledger
    from update_pipeline.audit import export

    path = export(shared.store(), out)
    typer.echo(f"root fingerprint: {Ledger.of(shared.store()).root().fingerprint} (give it to the auditor out "
               "of band)", err=True)
    typer.echo(f"audit bundle written to {path}")


@audit_app.command("verify")
def audit_verify(
    path: Path,
    trust: Annotated[Path | None, typer.Option(help="A trust root file you pinned ('weightgate trust show "
                                               "--json').")] = None,
    root_fingerprint: Annotated[str | None, typer.Option(help="A root version's fingerprint, given to you out "
                                                         "of band.")] = None,
) -> None:
    """Check a bundle offline, with no store, against a trust anchor you bring: checksums, chain, trust roots,
    signatures, reports, approvals, signed head."""
    from governance.audit_bundle import verify_bundle

    s = verify_bundle(path, trust, root_fingerprint)
    typer.echo(f"bundle verifies: {s['entries']} ledger entries, {s['attestations']} attestations, "
               f"champion ledger:{s['champion']}, trust root v{s['root_version']}, anchored on {s['anchor'][:16]}")


def register(app: typer.Typer) -> None:
    for fn in (approve, reject, promote, rollback, revert, forget):
        app.command()(fn)
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(audit_app, name="audit")
