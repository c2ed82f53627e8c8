"""The trust root: who may do what, signed, versioned, kept in the ledger itself.

Modelled on TUF's root metadata. A root version lists keys with one role each and the
thresholds. Version 1 is signed by its own root threshold and anchored by its
fingerprint, which users pin outside the store. Version N+1 must be signed by the root
threshold of version N *and* of version N+1, so keys enter, leave or rotate only with
the current admins' consent. Every ledger entry is judged against the root version in
force at its sequence number: revoking a key later never changes how history verifies,
and anything it signs after the revocation counts for nothing.

Who may do what (``RULES``): the action, the roles whose signatures count, and how many
distinct ones are needed. The gate runner's key signs reports and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from governance.errors import NotAuthorized, UsageError, VerificationError
from governance.keys import Signer, public_key
from governance.schema import RootDoc, RootKey
from governance.signing import canonical_json, sha256_hex

Action = Literal["root", "policy", "genesis", "promote", "rollback", "forget", "forget_done", "revert", "approve",
                 "propose", "report", "checkpoint"]
Threshold = Literal["root", "rollback", "approvals", "one"]

# action -> (roles whose signatures count, which threshold applies)
RULES: dict[str, tuple[frozenset[str], Threshold]] = {
    "root": (frozenset({"root"}), "root"),
    "policy": (frozenset({"root"}), "root"),
    "genesis": (frozenset({"operator", "approver"}), "one"),
    "promote": (frozenset({"operator", "approver"}), "one"),
    "rollback": (frozenset({"operator", "approver"}), "rollback"),
    "forget": (frozenset({"operator", "approver"}), "one"),
    "forget_done": (frozenset({"operator", "approver"}), "one"),
    "revert": (frozenset({"operator", "approver"}), "one"),
    "approve": (frozenset({"approver"}), "one"),
    "propose": (frozenset({"proposer", "operator"}), "one"),
    "report": (frozenset({"gate"}), "one"),
    "checkpoint": (frozenset({"root", "approver", "operator", "gate"}), "one"),  # those who append entries
}


@dataclass(frozen=True)
class Authorized:
    """Who signed an action, how many were needed, and which signatures did not count."""

    action: str
    signers: tuple[str, ...]
    threshold: int
    ignored: tuple[str, ...] = ()


def fingerprint(doc: RootDoc) -> str:
    """sha256 of the root document's canonical JSON: what users pin."""
    return sha256_hex(canonical_json(doc.model_dump()))


@dataclass(frozen=True)
class Root:
    doc: RootDoc

    @property
    def version(self) -> int:
        return self.doc.version

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.doc)

    def key(self, keyid: str) -> RootKey | None:
        return self.doc.keys.get(keyid)

    def by_name(self, name: str) -> tuple[str, RootKey] | None:
        for keyid, k in self.doc.keys.items():
            if k.name == name:
                return keyid, k
        return None

    def public_keys(self, *roles: str) -> dict[str, Ed25519PublicKey]:
        """keyid -> public key of the keys holding one of `roles` (every key when none is given)."""
        return {kid: public_key(k.public_key) for kid, k in self.doc.keys.items() if not roles or k.role in roles}

    def threshold(self, action: str) -> int:
        which = RULES[action][1]
        return 1 if which == "one" else getattr(self.doc.thresholds, which)

    def judge(self, action: str, keyids: set[str], where: str) -> Authorized:
        """Count the verified signatures (key ids) that may do `action`; raise VerificationError if too few."""
        roles, _ = RULES[action]
        counted = sorted(self.doc.keys[k].name for k in keyids if k in self.doc.keys and self.doc.keys[k].role in roles)
        ignored = sorted(f"{self.doc.keys[k].name} ({self.doc.keys[k].role})" if k in self.doc.keys
                         else f"{k[:12]} (not in root v{self.version})" for k in keyids
                         if k not in self.doc.keys or self.doc.keys[k].role not in roles)
        need = self.threshold(action)
        if len(counted) < need:
            extra = f"; not counted: {', '.join(ignored)}" if ignored else ""
            raise VerificationError(f"{where}: {action} needs {need} signature(s) by {'/'.join(sorted(roles))} "
                                    f"keys of root v{self.version}, has {len(counted)}{extra}")
        return Authorized(action, tuple(counted), need, tuple(ignored))

    def allow(self, action: str, signers: list[Signer]) -> Authorized:
        """Before writing: may these unlocked keys do `action`? NotAuthorized says why not."""
        roles, _ = RULES[action]
        for s in signers:
            k = self.key(s.keyid)
            if k is None:
                raise NotAuthorized(f"key {s.name!r} is not in the trust root (v{self.version}): a key file grants "
                                 "nothing; root admins add keys with 'weightgate trust add-key'")
            if k.role not in roles:
                raise NotAuthorized(f"key {s.name!r} has role {k.role!r} in the trust root; {action} needs "
                                 f"{' or '.join(sorted(roles))}")
        names = sorted({s.name for s in signers})
        need = self.threshold(action)
        if len(names) < need:
            raise NotAuthorized(f"{action} needs {need} distinct signature(s) by {'/'.join(sorted(roles))} keys "
                             f"(root v{self.version}); got {len(names)}: give --by once for each signer")
        return Authorized(action, tuple(names), need)


def next_root(current: Root, keys: dict[str, RootKey] | None = None, thresholds: dict[str, int] | None = None,
              created: float = 0.0) -> RootDoc:
    """The next root version: the current one with keys and thresholds replaced where given."""
    data = current.doc.model_dump()
    data["version"] = current.version + 1
    data["created"] = created
    if keys is not None:
        data["keys"] = {kid: k.model_dump() for kid, k in keys.items()}
    if thresholds:
        data["thresholds"] = {**data["thresholds"], **thresholds}
    try:
        return RootDoc.model_validate(data)
    except ValueError as exc:
        raise UsageError(f"the new root would be invalid: {exc}") from None


def check_anchor(roots: list[Root], anchor: str, where: str) -> None:
    """The chain holds a root version with the pinned fingerprint, or this is not the ledger you trust."""
    anchor = anchor.strip().lower()
    if not any(r.fingerprint == anchor for r in roots):
        have = roots[0].fingerprint[:16] if roots else "none"
        raise VerificationError(f"{where}: no root version has the pinned fingerprint {anchor[:16]}... "
                                f"(root v1 here is {have}...): this is not the ledger you pinned")
