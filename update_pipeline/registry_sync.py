"""MLflow follows the ledger: every ledger version registered, ``champion`` on the ledger's.

Each ledger version is one run in ``weightgate/ledger`` (named ``ledger:N promote PROPOSAL``,
``ledger:0 genesis``) and one registered version with the alias ``ledger-N``. Both carry their
lineage: the parent ledger version with its run and registered version, the proposal and its
run, and the update's data as a training dataset input that names it (name, source, the Merkle
root of its records' keyed MACs as digest) and holds none of it: nothing a forget would have to
delete from MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.history import policy_in_force, tombstones
from governance.ledger import Entry, champion, versions
from governance.lineage import Lineage
from governance.mlflow_model import omitted
from governance.proposals import ProposalStore
from governance.store import CHAMPION_ALIAS, Store
from update_pipeline.scratch import scratch
from update_pipeline.versions import prune_restores, restore_version


def sync_registry(store: Store, entries: list[Entry], tracking_uri: str | None = None) -> None:
    """Register every ledger version missing from MLflow and point ``champion`` at the ledger's. MLflow holds
    the files of the champion and of the newest versions (the policy's storage.registry_versions); older
    ones are released there and rebuilt from the ledger when they are needed again (a rollback)."""
    from governance.lineage import ledger_alias
    from governance.policy import in_force

    lineage = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir)
    registered = lineage.model_versions(store.model_name)
    by_version = versions(entries)
    dead = tombstones(entries)
    alive = [v for v in sorted(by_version) if v not in dead]
    keep = set(alive[-in_force(store.blobs().read, policy_in_force(entries), "storage")
                     .registry_versions:]) | ({champion(entries)} - {None})
    for version, entry in sorted(by_version.items()):
        if version in dead:
            continue
        if version in registered:
            mv = registered[version]
            if version in keep and not lineage.has_files(mv):
                lineage.put_files(store.model_name, mv, restore_version(store, entries, version),
                                  omitted(version, by_version))
            elif version not in keep and mv.tags.get("weightgate.files") != "released":
                lineage.release_files(store.model_name, mv)
            if ledger_alias(version) not in (getattr(mv, "aliases", None) or []):  # registered before aliases
                lineage.set_alias(store.model_name, ledger_alias(version), mv.version)
            continue
        folder = restore_version(store, entries, version) if version in keep else None
        registered[version] = _register(store, lineage, entries, entry, registered, folder,
                                        omitted(version, by_version))
    if champion(entries) is not None:
        lineage.set_alias(store.model_name, CHAMPION_ALIAS, registered[champion(entries)].version)
    prune_restores(store, keep)


def _register(store: Store, lineage: Lineage, entries: list[Entry], entry: Entry, registered: dict[int, Any],
              folder: Path | None, omit: frozenset[str]) -> Any:
    """Register one ledger version with its lineage; returns its registered version."""
    p = entry.predicate.get("proposal") or {}
    version, action, parent = entry.predicate["version"], entry.predicate["action"], entry.predicate.get("parent")
    tags = {"weightgate.entry_digest": entry.digest, "weightgate.manifest_digest": p.get("manifest_digest", ""),
            "weightgate.report_digest": p.get("report_blob", ""),
            "weightgate.approvers": ",".join(p.get("approvers", [])),
            "weightgate.approximate": str(bool((p.get("origin") or {}).get("approximate"))).lower()}
    run_tags = {"weightgate.action": action, "weightgate.entry_digest": entry.digest}
    run = None
    if p.get("id"):
        run_tags["weightgate.proposal"] = p["id"]
        if (store.proposals_dir / p["id"] / "lineage.json").is_file():
            run = ProposalStore.of(store, entries, entry.root).load(
                p["id"], redacted_ok=True).lineage().get("run_id")
    up = registered.get(parent) if parent is not None else None
    if parent is not None:
        tags["weightgate.parent_ledger_version"] = run_tags["weightgate.parent_ledger_version"] = str(parent)
    if up is not None:
        tags["weightgate.parent_model_version"] = run_tags["weightgate.parent_model_version"] = str(up.version)
        run_tags["weightgate.parent_run"] = up.run_id
    adapter = entry.predicate["weights"].get("adapter")
    if adapter and up is not None:
        tags |= {"weightgate.adapter": "adapter", "weightgate.base_model_version": str(up.version),
                 "weightgate.base_ledger_version": str(parent)}
    data = entry.predicate.get("data") or {}
    dataset = None
    if p.get("id") and data.get("merkle_root"):
        dataset = {"name": f"{p['id']}-data", "digest": data["merkle_root"],
                   "source": str(store.proposals_dir / p["id"] / "data.jsonl"),
                   "tags": {"weightgate.merkle_root": data["merkle_root"],
                            "weightgate.records": len(data.get("record_macs") or [])}}
    with scratch(store, "registry-sync") as tmp:
        where = store.blobs().materialize(adapter, tmp / "adapter") if adapter else None
        return lineage.register_version(
            store.model_name, version, folder, tags, run, where, run_name=_run_name(entry),
            run_tags=run_tags, description=_description(store, entry, up), dataset=dataset, omit=omit)


def _run_name(entry: Entry) -> str:
    p = entry.predicate.get("proposal") or {}
    return " ".join(x for x in (f"ledger:{entry.predicate['version']}", entry.predicate["action"], p.get("id")) if x)


def _description(store: Store, entry: Entry, up: Any) -> str:
    """What users read beside MLflow's own version number: which ledger version this is, and where it came from."""
    from governance.lineage import ledger_alias

    pr, version = entry.predicate, entry.predicate["version"]
    p = pr.get("proposal") or {}
    if pr["action"] == "genesis":
        said = f"ledger:{version}, the genesis: the base model {pr.get('source', '?')}."
    else:
        origin = (p.get("origin") or {}).get("method")
        approvers = ", ".join(p.get("approvers", [])) or "-"
        said = (f"ledger:{version}, a {p.get('kind', '?')} update{f' ({origin})' if origin else ''}: proposal "
                f"{p.get('id', '?')} by {p.get('proposer', '?')}, approved by {approvers}; "
                f"parent ledger:{pr.get('parent')}"
                + (f" (registered version {up.version})." if up is not None else "."))
    return (f"{said} Load it as models:/{store.model_name}@{ledger_alias(version)}; ledger entry "
            f"{entry.digest[:16]}.")


def registered_numbers(store: Store, tracking_uri: str | None = None) -> dict[int, str]:
    """ledger version -> MLflow's registered version number ({} when the tracking store is out of reach)."""
    from mlflow.exceptions import MlflowException

    try:
        return Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir).registered_versions(store.model_name)
    except (MlflowException, OSError):
        return {}
