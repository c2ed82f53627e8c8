"""Trust root and policy changes, each a ledger entry signed by the root admins' threshold.

``init`` writes root version 1 (the admins, the gate runner's key and any keys named) and
the policy in force, then records the root's fingerprint in the store's config. Users
should also pin it outside the store (WEIGHTGATE_ROOT_FINGERPRINT, an auditor's notes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from governance.errors import UsageError
from governance.keys import KeyInfo, KeyRing, Signer
from governance.ledger import Entry, Ledger, champion, current_root
from governance.schema import RootDoc, RootKey, Thresholds
from governance.signing import canonical_json, sha256_hex
from governance.store import Store
from governance.trust import Root, next_root
from update_pipeline import witnesses


def _root_key(info: KeyInfo, role: str) -> tuple[str, RootKey]:
    return info.keyid, RootKey(name=info.name, role=role, public_key=info.public_key)  # type: ignore[arg-type]


def _append_root(store: Store, ledger: Ledger, entries: list[Entry], doc: RootDoc, signers: list[Signer],
                 tracking_uri: str | None) -> Entry:
    digest = sha256_hex(canonical_json(doc.model_dump()))
    current = champion(entries)
    return witnesses.append(store, ledger, entries, {"action": "root", "version": current, "champion": current,
                                                     "root": doc.model_dump()},
                            {f"root-v{doc.version}": digest}, signers, tracking_uri)


def _policy_entry(store: Store, ledger: Ledger, entries: list[Entry], policy_path: Path, signers: list[Signer],
                  tracking_uri: str | None) -> Entry:
    from audits.registry import load_policy

    policy = load_policy(policy_path)
    blobs = store.blobs()
    ref = {"name": policy.name, "digest": policy.digest, "blob": blobs.put_bytes(policy_path.read_bytes()),
           "approvals": policy.approvals.required,
           "suites": {n: blobs.put_bytes(Path(p).read_bytes()) for n, p in policy.suite_files.items()}}
    current = champion(entries)
    return witnesses.append(store, ledger, entries, {"action": "policy", "version": current, "champion": current,
                                                     "policy": ref}, {"policy": policy.digest}, signers, tracking_uri)


def init(store: Store, admins: list[Signer], extra: list[tuple[str, str]], thresholds: dict[str, int],
         tracking_uri: str | None = None) -> Root:
    """Root version 1 and the policy in force; refuses a ledger that already has entries."""
    keys = KeyRing(store.keys_dir)
    ledger = Ledger(store.ledger_url, store.lock_path)
    gate = keys.gate_signer(create=True)
    with ledger.lock():
        entries = ledger.entries()
        if entries:
            raise UsageError(f"this store already has a trust root (fingerprint {current_root(entries).fingerprint}); "
                             "change it with 'weightgate trust add-key/revoke/rotate'")
        members = dict(_root_key(keys.get(a.name), "root") for a in admins)
        members[gate.keyid] = RootKey(name=gate.name, role="gate", public_key=_b64(gate))
        for name, role in extra:
            kid, k = _root_key(keys.get(name), role)
            members[kid] = k
        try:
            doc = RootDoc(version=1, keys=members, thresholds=Thresholds(**thresholds), created=round(time.time(), 3))
        except ValueError as exc:
            raise UsageError(f"cannot make the trust root: {exc}") from None
        Root(doc).allow("root", admins)
        entries.append(_append_root(store, ledger, entries, doc, admins, tracking_uri))
        store.write_config({**store.config(), "root_fingerprint": Root(doc).fingerprint})
        _policy_entry(store, ledger, entries, store.policy_path, admins, tracking_uri)
    return Root(doc)


def _b64(signer: Signer) -> str:
    import base64

    return base64.b64encode(signer.key.public_key().public_bytes_raw()).decode()


def change(store: Store, admins: list[Signer], add: tuple[KeyInfo, str] | None = None, remove: str | None = None,
           thresholds: dict[str, int] | None = None, tracking_uri: str | None = None) -> Root:
    """A new root version: add a key with a role, remove (revoke) one, or change thresholds.
    Signed by the current root threshold and the new one's."""
    ledger = Ledger.of(store)
    with ledger.lock():
        entries = ledger.entries()
        root = current_root(entries)
        members = dict(root.doc.keys)
        if remove is not None:
            found = root.by_name(remove)
            if found is None:
                raise UsageError(f"key {remove!r} is not in the trust root (v{root.version})")
            del members[found[0]]
        if add is not None:
            info, role = add
            if root.by_name(info.name) is not None and (remove != info.name):
                raise UsageError(f"a key named {info.name!r} is already in the trust root; revoke or rotate it")
            if info.keyid in members:
                raise UsageError(f"key {info.name!r} ({info.keyid[:12]}) is already in the trust root")
            kid, k = _root_key(info, role)
            members[kid] = k
        doc = next_root(root, members, thresholds, created=round(time.time(), 3))
        root.allow("root", admins)
        Root(doc).allow("root", [a for a in admins if a.keyid in doc.keys])
        _append_root(store, ledger, entries, doc, admins, tracking_uri)
    return Root(doc)


def apply_policy(store: Store, policy_path: Path, admins: list[Signer],
                 tracking_uri: str | None = None) -> dict[str, Any]:
    """Record a policy as the one in force (a ledger entry) and make it the store's policy.yaml."""
    import shutil

    ledger = Ledger.of(store)
    with ledger.lock():
        entries = ledger.entries()
        current_root(entries).allow("policy", admins)
        entry = _policy_entry(store, ledger, entries, policy_path, admins, tracking_uri)
    if policy_path.resolve() != store.policy_path.resolve():
        shutil.copyfile(policy_path, store.policy_path)
    return entry.predicate["policy"]


def checkpoint(store: Store, signers: list[Signer], tracking_uri: str | None = None) -> int:
    """Bring MLflow in line with the ledger, sign the current head again and give it to every witness
    (after an interrupted write)."""
    ledger = Ledger.of(store)
    with ledger.lock():
        entries = ledger.entries()
        current_root(entries).allow("checkpoint", signers)
        witnesses.check_witnesses(store, entries, tracking_uri, strict=False)
        from update_pipeline.promote import sync_registry

        sync_registry(store, entries, tracking_uri)  # MLflow follows the ledger, whatever it says now
        witnesses.publish(store, ledger, entries, signers, tracking_uri)
    return len(entries)
