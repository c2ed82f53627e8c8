"""Every ledger write goes through here: check the witnesses, append, publish the new head.

Before appending, the ledger must not be behind any witness (else a write would fork a
truncated history). After appending, the signers' checkpoint of the new head goes to
the MLflow registered model (tag ``weightgate.checkpoint``), to every file the policy in
force names, and to the ledger database's copy used by audit export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from governance.errors import VerificationError
from governance.keys import Signer
from governance.ledger import Entry, Ledger, champion, policy_in_force
from governance.lineage import Lineage
from governance.store import CHAMPION_ALIAS, Store
from governance.witness import FileWitness, file_witnesses, make_checkpoint, read_checkpoint

MLFLOW_TAG = "weightgate.checkpoint"


def _policy_witnesses(store: Store, entries: list[Entry]) -> list[FileWitness]:
    import yaml

    from governance.blobs import BlobStore

    ref = policy_in_force(entries)
    if ref is None:
        return []
    doc = yaml.safe_load(BlobStore(store.blobs_dir).read(ref["blob"])) or {}
    return file_witnesses(doc.get("witnesses") or [])


def check_witnesses(store: Store, entries: list[Entry], tracking_uri: str | None = None) -> list[str]:
    """Raise VerificationError when the ledger is shorter or older than any witness, or MLflow's
    champion alias is not the ledger's champion (or, when MLflow's checkpoint lags after a crash,
    the champion at that checkpoint). Returns what was compared."""
    seen = []
    for w in _policy_witnesses(store, entries):
        latest = w.latest()
        if latest is None:
            if entries:
                raise VerificationError(f"{w.name} named by the policy holds no checkpoint")
            continue
        cp = read_checkpoint(latest, entries, w.name)
        seen.append(f"{w.name} (entry {cp.seq})")
    if not entries:
        return seen
    lineage = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir)
    state = lineage.model_state(store.model_name, CHAMPION_ALIAS)
    where = f"MLflow registered model {store.model_name!r}"
    if state is None or MLFLOW_TAG not in state[0]:
        raise VerificationError(f"{where} holds no signed checkpoint of the ledger (tag {MLFLOW_TAG} missing)")
    tags, alias_version = state
    cp = read_checkpoint(tags[MLFLOW_TAG].encode(), entries, where)
    seen.append(f"MLflow (entry {cp.seq})")
    current = champion(entries)
    allowed = {current, champion(entries[:cp.seq])}  # a crash after the append may leave MLflow one step behind
    if alias_version not in allowed:
        shown = "nothing" if alias_version is None else f"ledger:{alias_version}"
        raise VerificationError(f"{where}: alias @{CHAMPION_ALIAS} serves {shown}, but the ledger's champion is "
                                f"ledger:{current}")
    return seen


def publish(store: Store, ledger: Ledger, entries: list[Entry], signers: list[Signer],
            tracking_uri: str | None = None) -> bytes:
    """Sign a checkpoint of the head with `signers` and give it to every witness."""
    envelope = make_checkpoint(entries, signers)
    ledger.save_checkpoint(len(entries), envelope)
    for w in _policy_witnesses(store, entries):
        w.publish(envelope)
    Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir).set_model_tag(
        store.model_name, MLFLOW_TAG, envelope.decode())
    return envelope


def append(store: Store, ledger: Ledger, entries: list[Entry], predicate: dict[str, Any],
           subjects: Mapping[str, str], signers: list[Signer], tracking_uri: str | None = None,
           after: Any = None) -> Entry:
    """Witness check, append (signed by `signers`), `after(all entries)` (e.g. the registry), publish."""
    check_witnesses(store, entries, tracking_uri)
    entry = ledger.append(entries, predicate, subjects, signers)
    everything = [*entries, entry]
    if after is not None:
        after(everything)
    publish(store, ledger, everything, signers, tracking_uri)
    return entry
