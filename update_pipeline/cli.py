"""The ``weightgate`` command line: a thin face over the update pipeline.

Each command parses options and calls one public function; heavy libraries are
imported inside the commands, so ``weightgate --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from governance.errors import WeightgateError
from update_pipeline import _cli_shared as shared
from update_pipeline import cache_gc, cli_audits, cli_ledger, cli_train, cli_trust

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Govern weight updates: propose -> gates -> signed report -> approvals -> ledger.")
keys_app = typer.Typer(no_args_is_help=True, help="Create and list signing keys (a key grants nothing until the "
                       "trust root lists it).")
app.add_typer(keys_app, name="keys")

_QUIET_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
              "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false",
              "GX_ANALYTICS_ENABLED": "false", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@app.callback()
def _root(
    home: Annotated[Path | None, typer.Option(envvar="WEIGHTGATE_HOME",
                                                 help="Store folder (default ./.weightgate).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI",
                                                        help="MLflow tracking server for lineage.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    shared.state.update(home=home, tracking_uri=tracking_uri, debug=debug)


@app.command()
def init(
    policy: Annotated[Path | None, typer.Option(help="The store's first policy (default: the shipped default); "
                                                "it is in force once 'trust init' records it.")] = None,
    ledger_url: Annotated[str | None, typer.Option(
        help="The ledger's database: postgresql+psycopg://USER@HOST:PORT/DB for a team (default: SQLite in "
             "the store)")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="The team's MLflow tracking server, http://HOST:PORT (default: SQLite in the store)")] = None,
    blobs: Annotated[str | None, typer.Option(
        help="Where the team's weights live: an MLflow artifact URI (s3://, gs://, file:// on a shared disk) "
             "(default with --ledger-url and a server: the server's proxied artifacts)")] = None,
    model_name: Annotated[str, typer.Option(help="The registered model in MLflow; every member of a team names "
                                            "the same one")] = "weightgate-model",
    root_fingerprint: Annotated[str | None, typer.Option(
        help="Pin the team's trust root (the fingerprint 'trust init' printed): a ledger under any other root "
             "is refused")] = None,
) -> None:
    """Create the store (MLflow SQLite tracking store, keys, proposals, blobs, policy). With --ledger-url
    and --tracking-uri it is a member's home on a team's servers: 'weightgate doctor' says what it reaches."""
    import policies
    from governance.errors import UsageError
    from update_pipeline.doctor import check_ledger_url

    if policy is not None and not policy.is_file():
        raise UsageError(f"{policy}: no such policy file")
    tracking_uri = tracking_uri or shared.tracking_uri()
    if ledger_url:
        check_ledger_url(ledger_url)
    store = shared.store()
    created = store.init(policy or policies.path("default"), tracking_uri, ledger_url, blobs, model_name,
                         root_fingerprint)
    typer.echo(f"{'created' if created else 'already present'}: weightgate store at {store.home}")


@keys_app.command("create")
def keys_create(
    name: str,
    role: Annotated[str, typer.Option(help="root | proposer | approver | operator | auditor: the role to ask "
                                      "the root admins for")],
) -> None:
    """Create an Ed25519 key, sealed with scrypt and AES-256-GCM under a passphrase of 12 or more characters
    (WEIGHTGATE_PASSPHRASE_<NAME>, WEIGHTGATE_PASSPHRASE, or a prompt). With WEIGHTGATE_KEYS_DIR set it is
    written there (your own machine), not into the store."""
    from governance.keys import KeyRing

    store = shared.store()
    store.config()
    ring = KeyRing(store.keys_dir)
    info = ring.create(name, role, shared.passphrase(name, confirm=True))
    where = ring.own or ring.dir
    typer.echo(f"created key {info.name} id {info.keyid[:16]} in {where}; it grants nothing until a root admin "
               f"runs: weightgate trust add-key {info.name} --role {info.role} --by ADMIN"
               + (f" --public-key {where / (info.name + '.json')}" if ring.own else ""))


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the keys here, with the role the trust root in force gives each (if any)."""
    from rich.console import Console
    from rich.table import Table

    from governance.errors import WeightgateError
    from governance.keys import KeyRing

    store = shared.store()
    keys = KeyRing(store.keys_dir).list()
    try:
        root = shared.service().root()
    except WeightgateError:
        root = None
    rows = []
    for k in keys:
        listed = root.key(k.keyid) if root else None
        rows.append({"name": k.name, "keyid": k.keyid, "asked_role": k.role,
                     "trusted_role": listed.role if listed else None})
    if as_json:
        shared.emit(rows)
        return
    table = Table("name", "role in the trust root", "key id", title=f"keys (trust root v{root.version})" if root
                  else "keys (no trust root yet)")
    for r in rows:
        table.add_row(r["name"], r["trusted_role"] or f"none (asked: {r['asked_role']})", r["keyid"][:16])
    Console().print(table)


@app.command()
def propose(
    base: Annotated[str, typer.Option(help="Base model REF.")],
    candidate: Annotated[Path, typer.Option(help="Model folder, safetensors delta file, or LoRA adapter folder.")],
    data: Annotated[Path, typer.Option(help="The update's training data (JSONL).")],
    by: Annotated[str, typer.Option(help="Proposer key name.")],
    note: Annotated[str, typer.Option(help="Free text kept with the proposal.")] = "",
) -> None:
    """Sign a manifest of the update and record it as a proposal (and an MLflow run)."""
    from rich.console import Console

    from update_pipeline.intake import propose as do_propose

    store = shared.store()
    store.config()
    secret = shared.passphrase(by)
    with Console(stderr=True).status("hashing files, computing deltas, logging to MLflow"):
        p = do_propose(store, base, candidate, data, by, secret, note, shared.tracking_uri())  # type: ignore[arg-type]
    typer.echo(f"proposal {p.id} ({p.kind}) recorded; MLflow run {p.run_id}")
    for line in p.notes:
        typer.echo(f"note: {line}", err=True)


@app.command()
def check(
    proposal: str,
    policy: Annotated[Path | None, typer.Option(help="Policy file (default: the store's policy.yaml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the signed report's content.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    sarif: Annotated[Path | None, typer.Option(help="Write SARIF 2.1.0 here (for code scanning): data findings "
                                              "point at the --data file propose was given, at the record's "
                                              "line; model-level ones at the policy or suite file.")] = None,
    device: Annotated[str, typer.Option(show_default=False, help=f"{shared.DEVICE_HELP[:-1]} (default: auto).")
                      ] = "auto",
) -> None:
    """Run the gates the policy requires; exit 1 if any fails."""
    from update_pipeline.check import check as do_check
    from update_pipeline.report_formats import junit_xml, sources, write_sarif

    shared.use_device(device)
    store = shared.store()
    checked = do_check(store, proposal, policy, shared.tracking_uri())  # type: ignore[arg-type]
    report = checked.report
    if junit:
        junit.write_bytes(junit_xml(report))
    if sarif:
        write_sarif(report, sources(report, checked.envelope, checked.data_path, policy or store.policy_path), sarif)
    if as_json:
        shared.emit(report)
    else:
        from update_pipeline.show import print_report

        print_report(report)
    if report["verdict"] != "pass":
        raise typer.Exit(1)


@app.command()
def demo(
    home: Annotated[Path | None, typer.Option(help="Store for the demo (default: the store).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object at the end.")] = False,
) -> None:
    """Build the world model, propose four updates (clean, pii, backdoor, forgetting) and check them."""
    from governance.store import Store
    from update_pipeline.demo import run_demo

    store = Store.locate(home or shared.state["home"])  # type: ignore[arg-type]
    result = run_demo(store, quiet=as_json)
    if as_json:
        shared.emit(result)


cli_train.register(app)
cli_ledger.register(app)
cli_audits.register(app)
cli_trust.register(app)
cache_gc.register(app)


def _quiet() -> None:
    import logging
    import warnings

    for k, v in _QUIET_ENV.items():
        os.environ.setdefault(k, v)
    for noisy in ("mlflow", "transformers", "peft", "great_expectations", "alembic"):
        warnings.filterwarnings("ignore", module=noisy)
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8501,
) -> None:
    """Serve the approval dashboard (Streamlit) on 127.0.0.1 over this store."""
    import os
    import sys

    store = shared.store()
    env = {**os.environ, "WEIGHTGATE_HOME": str(store.home), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    if shared.tracking_uri():
        env["MLFLOW_TRACKING_URI"] = str(shared.tracking_uri())
    typer.echo(f"weightgate dashboard over {store.home}: http://127.0.0.1:{port}  (Ctrl-C to stop)", err=True)
    sys.stderr.flush()
    # the server replaces this process: stopping it (Ctrl-C, SIGTERM) stops the server, no child is left behind
    os.execve(sys.executable, [sys.executable, "-m", "dashboard.serve", "--port", str(port)], env)


def main() -> None:
    _quiet()
    try:
        app()
    except WeightgateError as exc:
        if shared.state["debug"]:
            raise
        typer.echo(f"weightgate: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug or an outside failure: one line, traceback with --debug
        if shared.state["debug"]:
            raise
        typer.echo(f"weightgate: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

