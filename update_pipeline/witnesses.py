"""Every ledger write goes through here: check the witnesses, append, publish the new head.

Before appending, the ledger must not be behind any witness (else a write would fork a
truncated history). After appending, the signers' checkpoint of the new head goes to
the MLflow registered model (tag ``weightgate.checkpoint``), to every file the policy in
force names, and to the ledger database's copy used by audit export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from governance.errors import VerificationError
from governance.keys import Signer
from governance.ledger import Entry, Ledger, champion
from governance.lineage import Lineage
from governance.store import CHAMPION_ALIAS, Store
from governance.witness import FileWitness, file_witnesses, make_checkpoint, read_checkpoint
from update_pipeline.scratch import scratch

MLFLOW_TAG = "weightgate.checkpoint"


def witness_files(store: Store, entries: list[Entry]) -> list[FileWitness]:
    """Every witness file any policy in the ledger ever named, and those pinned outside the store in
    WEIGHTGATE_WITNESSES (paths separated by os.pathsep): cutting the ledger back to before the policy
    that named a witness does not make the witness go away."""
    import yaml


    blobs = store.blobs()
    paths: list[str] = []
    for e in entries:
        if e.predicate["action"] == "policy":
            doc = yaml.safe_load(blobs.read(e.predicate["policy"]["blob"])) or {}
            paths += doc.get("witnesses") or []
    paths += [p for p in os.environ.get("WEIGHTGATE_WITNESSES", "").split(os.pathsep) if p]
    return file_witnesses(list(dict.fromkeys(paths)))


def check_witnesses(store: Store, entries: list[Entry], tracking_uri: str | None = None,
                    strict: bool = True) -> list[str]:
    """Raise VerificationError when the ledger is shorter or older than any witness. With `strict` (verify),
    also when MLflow is behind the ledger, or its ``champion`` alias is not the ledger's champion, or the
    files that alias serves are not the champion's. Writers pass strict=False: they bring MLflow in line.
    Returns what was compared."""
    seen = []
    for w in witness_files(store, entries):
        latest = w.latest()
        if latest is None:
            if entries and strict:
                raise VerificationError(f"{w.name} holds no checkpoint")
            continue
        cp = read_checkpoint(latest, entries, w.name)
        seen.append(f"{w.name} (entry {cp.seq})")
    if not entries:
        return seen
    lineage = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir)
    tags = lineage.model_tags(store.model_name)
    where = f"MLflow registered model {store.model_name!r}"
    if tags is None or MLFLOW_TAG not in tags:
        raise VerificationError(f"{where} holds no signed checkpoint of the ledger (tag {MLFLOW_TAG} missing)")
    cp = read_checkpoint(tags[MLFLOW_TAG].encode(), entries, where)
    seen.append(f"MLflow (entry {cp.seq})")
    if not strict:
        return seen
    if cp.seq < len(entries):
        raise VerificationError(f"{where} is behind the ledger (its checkpoint is of entry {cp.seq}, the ledger has "
                                f"{len(entries)}): an interrupted write, or someone moved it back; bring it in line "
                                "with 'weightgate ledger checkpoint --by KEY'")
    _check_alias(store, lineage, entries, where)
    return seen


def _check_alias(store: Store, lineage: Lineage, entries: list[Entry], where: str) -> None:
    from governance.ledger import versions

    current = champion(entries)
    mv = lineage.alias_version(store.model_name, CHAMPION_ALIAS)
    if mv is None or current is None:
        if mv is not None or current is not None:
            raise VerificationError(f"{where}: alias @{CHAMPION_ALIAS} serves {'nothing' if mv is None else 'a model'}"
                                    f", but the ledger's champion is {'nothing' if current is None else current}")
        return
    from governance.mlflow_model import omitted

    files = {n: f["sha256"] for n, f in versions(entries)[current].predicate["weights"]["files"].items()}
    skip = omitted(current, versions(entries))  # a recipe that is not the version's own is not served
    want = {n: d for n, d in files.items() if n not in skip}
    with scratch(store, "witness") as tmp:
        served = lineage.version_file_digests(mv, tmp)
    if served not in (want, files):  # all of them: registered before such recipes were left out
        claimed = mv.tags.get("weightgate.ledger_version", "?")
        raise VerificationError(f"{where}: alias @{CHAMPION_ALIAS} serves registered version {mv.version} (tagged "
                                f"ledger:{claimed}), whose files are not those of the ledger's champion "
                                f"ledger:{current}")


def publish(store: Store, ledger: Ledger, entries: list[Entry], signers: list[Signer],
            tracking_uri: str | None = None) -> bytes:
    """Sign a checkpoint of the head with `signers` and give it to every witness."""
    envelope = make_checkpoint(entries, signers)
    ledger.save_checkpoint(len(entries), envelope)
    for w in witness_files(store, entries):
        w.publish(envelope)
    Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir).set_model_tag(
        store.model_name, MLFLOW_TAG, envelope.decode())
    return envelope


def append(store: Store, ledger: Ledger, entries: list[Entry], predicate: dict[str, Any],
           subjects: Mapping[str, str], signers: list[Signer], tracking_uri: str | None = None,
           after: Any = None) -> Entry:
    """Witness check, append (signed by `signers`), `after(all entries)` (e.g. the registry), publish."""
    check_witnesses(store, entries, tracking_uri, strict=False)
    entry = ledger.append(entries, predicate, subjects, signers)
    everything = [*entries, entry]
    if after is not None:
        after(everything)
    publish(store, ledger, everything, signers, tracking_uri)
    return entry
