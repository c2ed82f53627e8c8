"""One service API for both faces: the command line and the dashboard call these methods.

``Weightgate(store)`` unlocks the keys named with ``by`` (passphrases from the caller's
``passphrase(name)``: the environment or a prompt for the CLI, a typed field for the
dashboard) and calls the flow. Who may do what is decided in one place, the trust root
(governance.trust), both before writing and when verifying.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governance.approvals import ApprovalStatus, Decision
from governance.errors import UsageError
from governance.keys import KeyRing, Signer, passphrase_from_env
from governance.ledger import Entry
from governance.store import Store
from governance.trust import Root

Passphrase = Callable[[str], str | None]


@dataclass
class Weightgate:
    store: Store
    tracking_uri: str | None = None
    passphrase: Passphrase = field(default=passphrase_from_env)

    # -- keys ----------------------------------------------------------------------------------------
    @property
    def keys(self) -> KeyRing:
        return KeyRing(self.store.keys_dir)

    def signers(self, by: str | Sequence[str]) -> list[Signer]:
        names = [by] if isinstance(by, str) else list(dict.fromkeys(by))
        if not names:
            raise UsageError("say who signs with --by KEYNAME")
        return [self.keys.signer(n, self.passphrase(n)) for n in names]

    def root(self) -> Root:
        from update_pipeline.promote import trusted

        return trusted(self.store)[2]

    # -- trust ---------------------------------------------------------------------------------------
    def trust_init(self, by: Sequence[str], add: Sequence[tuple[str, str]] = (),
                   thresholds: dict[str, int] | None = None) -> Root:
        from update_pipeline import trust_ops

        self.store.config()
        return trust_ops.init(self.store, self.signers(by), list(add), thresholds or {}, self.tracking_uri)

    @staticmethod
    def _confirm(info: Any, keyid: str | None) -> None:
        """The admin names the key id its owner read them out of band: a swapped key file is caught."""
        if not keyid or len(keyid) < 16:
            raise UsageError(f"give --keyid with at least 16 hex digits of key {info.name!r}'s id, as its owner reads "
                             "it from 'weightgate keys list' on their own machine (the key file here could have been "
                             "swapped)")
        if not info.keyid.startswith(keyid.lower()):
            raise UsageError(f"key {info.name!r} here has id {info.keyid[:16]}, not {keyid[:16]}: the key file is not "
                             "the one its owner made")

    def trust_add_key(self, name: str, role: str, by: Sequence[str], public_record: Path | None = None,
                      keyid: str | None = None) -> Root:
        import json

        from governance.keys import KeyInfo, keyid_of
        from update_pipeline import trust_ops

        if public_record is not None:
            try:
                info = KeyInfo(**json.loads(public_record.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                raise UsageError(f"{public_record}: not a key record ({exc})") from None
            if keyid_of(info.public_key) != info.keyid:
                raise UsageError(f"{public_record}: key id does not match the public key")
        else:
            info = self.keys.get(name)
        if info.name != name:
            raise UsageError(f"{public_record} is the record of key {info.name!r}, not {name!r}")
        self._confirm(info, keyid)
        return trust_ops.change(self.store, self.signers(by), add=(info, role), tracking_uri=self.tracking_uri)

    def trust_revoke(self, name: str, by: Sequence[str]) -> Root:
        from update_pipeline import trust_ops

        return trust_ops.change(self.store, self.signers(by), remove=name, tracking_uri=self.tracking_uri)

    def trust_rotate(self, name: str, new: str, by: Sequence[str], keyid: str | None = None) -> Root:
        from update_pipeline import trust_ops

        found = self.root().by_name(name)
        if found is None:
            raise UsageError(f"key {name!r} is not in the trust root")
        info = self.keys.get(new)
        self._confirm(info, keyid)
        return trust_ops.change(self.store, self.signers(by), add=(info, found[1].role), remove=name,
                                tracking_uri=self.tracking_uri)

    def trust_thresholds(self, thresholds: dict[str, int], by: Sequence[str]) -> Root:
        from update_pipeline import trust_ops

        return trust_ops.change(self.store, self.signers(by), thresholds=thresholds, tracking_uri=self.tracking_uri)

    def apply_policy(self, path: Path, by: Sequence[str]) -> dict[str, Any]:
        from update_pipeline import trust_ops

        return trust_ops.apply_policy(self.store, path, self.signers(by), self.tracking_uri)

    def checkpoint(self, by: Sequence[str]) -> int:
        from update_pipeline import trust_ops

        return trust_ops.checkpoint(self.store, self.signers(by), self.tracking_uri)

    # -- the flow ------------------------------------------------------------------------------------
    def decide(self, proposal: str, by: str, decision: Decision, comment: str = "",
               report: str | None = None) -> ApprovalStatus:
        from update_pipeline.promote import decide

        return decide(self.store, proposal, self.signers(by)[0], decision, comment, report)

    def approve(self, proposal: str, by: str, comment: str = "", report: str | None = None) -> ApprovalStatus:
        return self.decide(proposal, by, "approve", comment, report)

    def reject(self, proposal: str, by: str, reason: str, report: str | None = None) -> ApprovalStatus:
        if not reason.strip():
            raise UsageError("a rejection needs a reason")
        return self.decide(proposal, by, "reject", reason, report)

    def promote(self, proposal: str, by: str | Sequence[str]) -> Any:
        from update_pipeline.promote import promote

        return promote(self.store, proposal, self.signers(by), self.tracking_uri)

    def rollback(self, version: int, by: str | Sequence[str], reason: str = "") -> tuple[Entry, Path]:
        from update_pipeline.promote import rollback

        return rollback(self.store, version, self.signers(by), self.tracking_uri, reason)

    def revert(self, version: int, exact: bool, by: str, proposer: str | None = None) -> Any:
        from update_pipeline.unlearn import revert

        signer = self.signers(by)[0]
        who = proposer or by
        return revert(self.store, version, exact, signer, proposer, self.passphrase(who), self.tracking_uri)

    def forget(self, record_id: str | None, text: str | None, by: str, proposer: str | None = None,
               replay: bool = True, approximate: bool = False) -> Any:
        """Forget records (or, with neither record_id nor text, finish an interrupted forget)."""
        from update_pipeline.forget import forget

        signer = self.signers(by)[0]
        who = proposer or by
        return forget(self.store, record_id, text, signer, proposer, self.passphrase(who), self.tracking_uri,
                      replay, approximate)

    def verify(self, deep: bool = False, anchor: str | None = None) -> dict[str, Any]:
        from update_pipeline.audit import verify_store

        return verify_store(self.store, deep, self.tracking_uri, anchor)
