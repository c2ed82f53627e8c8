"""Commands that change who may do what (the trust root, the policy in force), and what a store reaches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from update_pipeline import _cli_shared as shared

trust_app = typer.Typer(no_args_is_help=True, help="The signed trust root: keys, roles, thresholds.")
policy_app = typer.Typer(no_args_is_help=True, help="The policy in force, recorded in the ledger.")
ADMINS = typer.Option("--by", help="Root admin key that signs (repeat for each signer the root threshold needs).")
ROLE_HELP = "root | proposer | approver | operator | auditor"
KEYID = typer.Option(help="At least 16 hex digits of the key's id, read to you by its owner from 'weightgate keys "
                     "list' on their machine (catches a swapped key file).")


def _print_root(root, as_json: bool = False) -> None:  # noqa: ANN001
    if as_json:
        from governance.signing import canonical_json

        typer.echo(canonical_json(root.doc.model_dump()).decode())
        return
    from rich.console import Console
    from rich.table import Table

    t = root.doc.thresholds
    table = Table(title=f"trust root v{root.version}")
    for col in ("name", "role", "key id"):
        table.add_column(col)
    for kid, k in sorted(root.doc.keys.items(), key=lambda kv: (kv[1].role, kv[1].name)):
        table.add_row(k.name, k.role, kid[:16])
    console = Console()
    console.print(table)
    console.print(f"fingerprint: {root.fingerprint}")
    console.print(f"thresholds: approvals to promote {t.approvals}, signatures to roll back {t.rollback}, "
                  f"root admin signatures to change the root or the policy {t.root}")


@trust_app.command("init")
def trust_init(
    by: Annotated[list[str], ADMINS],
    add: Annotated[list[str] | None, typer.Option(help="NAME:ROLE of another key to list in root v1 (repeat).")] = None,
    approvals: Annotated[int, typer.Option(min=1, help="Approvals needed to promote.")] = 1,
    rollback: Annotated[int, typer.Option(min=1, help="Approver/operator signatures needed to roll back.")] = 1,
    root_threshold: Annotated[int, typer.Option(min=1, help="Root admin signatures to change the root.")] = 1,
) -> None:
    """Create root version 1: the admins (--by, keys made with 'keys create NAME --role root'), the gate
    runner's key (WEIGHTGATE_GATE_PASSPHRASE), the keys given with --add; record the policy in force."""
    pairs = []
    for item in add or []:
        name, _, role = item.partition(":")
        if not role:
            raise typer.BadParameter(f"{item!r}: use NAME:ROLE ({ROLE_HELP})", param_hint="--add")
        pairs.append((name, role))
    root = shared.service().trust_init(by, pairs, {"approvals": approvals, "rollback": rollback,
                                                   "root": root_threshold})
    _print_root(root)
    typer.echo(f"pin this fingerprint outside the store (WEIGHTGATE_ROOT_FINGERPRINT, your auditors): "
               f"{root.fingerprint}")


@trust_app.command("show")
def trust_show(as_json: Annotated[bool, typer.Option("--json", help="Print the root document (a file an auditor "
                                                     "can pin with 'audit verify --trust').")] = False) -> None:
    """Show the trust root in force: keys, roles, thresholds, fingerprint."""
    _print_root(shared.service().root(), as_json)


@trust_app.command("add-key")
def trust_add_key(
    name: str,
    role: Annotated[str, typer.Option(help=ROLE_HELP)],
    by: Annotated[list[str], ADMINS],
    keyid: Annotated[str | None, KEYID] = None,
    public_key: Annotated[Path | None, typer.Option(help="The key's public record (NAME.json from 'keys create' "
                                                    "on its owner's machine) (default: the keyring's).")] = None,
) -> None:
    """List a key in a new root version with a role; --keyid confirms it is the key its owner made."""
    _print_root(shared.service().trust_add_key(name, role, by, public_key, keyid))


@trust_app.command("revoke")
def trust_revoke(name: str, by: Annotated[list[str], ADMINS]) -> None:
    """Remove a key in a new root version: history signed before stays valid, later signatures count for nothing."""
    _print_root(shared.service().trust_revoke(name, by))


@trust_app.command("rotate")
def trust_rotate(
    name: str,
    to: Annotated[str, typer.Option("--to", help="The new key that takes over NAME's role.")],
    by: Annotated[list[str], ADMINS],
    keyid: Annotated[str | None, KEYID] = None,
) -> None:
    """Replace a key by a new one with the same role, in one new root version."""
    _print_root(shared.service().trust_rotate(name, to, by, keyid))


@trust_app.command("thresholds")
def trust_thresholds(
    by: Annotated[list[str], ADMINS],
    approvals: Annotated[int | None, typer.Option(min=1)] = None,
    rollback: Annotated[int | None, typer.Option(min=1)] = None,
    root_threshold: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Change thresholds in a new root version."""
    values = {k: v for k, v in {"approvals": approvals, "rollback": rollback, "root": root_threshold}.items()
              if v is not None}
    if not values:
        raise typer.BadParameter("give at least one of --approvals, --rollback, --root-threshold")
    _print_root(shared.service().trust_thresholds(values, by))


@policy_app.command("apply")
def policy_apply(path: Path, by: Annotated[list[str], ADMINS]) -> None:
    """Make PATH the policy in force: a ledger entry signed by the root threshold, covering its suite files."""
    ref = shared.service().apply_policy(path, by)
    typer.echo(f"policy {ref['name']} in force (digest {ref['digest'][:16]}, suites: "
               f"{', '.join(ref['suites']) or 'none'})")


@policy_app.command("show")
def policy_show() -> None:
    """Print the policy in force, as recorded in the ledger."""
    from governance.history import policy_in_force
    from governance.ledger import Ledger

    store = shared.store()
    ref = policy_in_force(Ledger.of(store).entries())
    if ref is None:
        raise typer.BadParameter("no policy is recorded yet: run 'weightgate trust init'")
    typer.echo(store.blobs().read(ref["blob"]).decode(), nl=False)
    typer.echo(f"# digest {ref['digest']} (file and suites: {', '.join(ref['suites']) or 'none'})", err=True)


def doctor() -> None:
    """Say what this store reaches: its ledger database (and whether it verifies), its MLflow tracking
    store, and whether its blobs, cache and keys folders are writable. Exit 1 when anything is not."""
    from rich.console import Console
    from rich.table import Table

    from update_pipeline.doctor import diagnose

    found = diagnose(shared.store(), shared.tracking_uri())
    table = Table("part", "where", "", "detail", box=None)
    for f in found:
        table.add_row(f.part, f.where, "[green]ok[/]" if f.ok else "[red]FAIL[/]", f.detail)
    Console().print(table)
    if not all(f.ok for f in found):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.add_typer(trust_app, name="trust")
    app.add_typer(policy_app, name="policy")
