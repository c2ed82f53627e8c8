"""Ed25519 keys with roles, private halves encrypted at rest.

Each key is two files in the store's keys/ folder: NAME.json (public record: role,
keyid, public key) and NAME.pem (PKCS#8, encrypted with the key's passphrase). The
keyid is the sha256 of the raw public key. The gate runner signs reports with its own
machine key, `GATE_KEY`, encrypted when WEIGHTGATE_GATE_PASSPHRASE is set.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.errors import UsageError, VerificationError
from governance.signing import sha256_hex

ROLES = ("proposer", "approver", "auditor")
GATE_KEY, GATE_ROLE = "weightgate-gate", "gate"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class KeyInfo:
    name: str
    role: str
    keyid: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    created: float
    revoked: bool = False

    def public(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))


def passphrase_from_env(name: str) -> str | None:
    """WEIGHTGATE_PASSPHRASE_<NAME> (upper case, '-' and '.' as '_'), then WEIGHTGATE_PASSPHRASE."""
    specific = "WEIGHTGATE_PASSPHRASE_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    return os.environ.get(specific) or os.environ.get("WEIGHTGATE_PASSPHRASE")


class KeyRing:
    def __init__(self, keys_dir: Path) -> None:
        self.dir = keys_dir

    def _paths(self, name: str) -> tuple[Path, Path]:
        if not _NAME.match(name):
            raise UsageError(f"invalid key name {name!r}: use lower-case letters, digits, '.', '_', '-'")
        return self.dir / f"{name}.json", self.dir / f"{name}.pem"

    def create(self, name: str, role: str, passphrase: str | None) -> KeyInfo:
        if role not in ROLES and not (name == GATE_KEY and role == GATE_ROLE):
            raise UsageError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
        if role != GATE_ROLE and not passphrase:
            raise UsageError(f"key {name!r} needs a passphrase (set WEIGHTGATE_PASSPHRASE or answer the prompt)")
        pub_path, pem_path = self._paths(name)
        if pub_path.exists() or pem_path.exists():
            raise UsageError(f"key {name!r} already exists in {self.dir}")
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        info = KeyInfo(name, role, sha256_hex(raw), base64.b64encode(raw).decode(), round(time.time(), 3))
        enc = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
               else serialization.NoEncryption())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        pub_path.write_text(json.dumps(asdict(info), indent=2) + "\n")
        return info

    def get(self, name: str) -> KeyInfo:
        pub_path, _ = self._paths(name)
        if not pub_path.is_file():
            raise UsageError(f"unknown key {name!r} (see 'weightgate keys list')")
        return KeyInfo(**json.loads(pub_path.read_text()))

    def list(self) -> list[KeyInfo]:
        if not self.dir.is_dir():
            return []
        return [self.get(p.stem) for p in sorted(self.dir.glob("*.json"))]

    def private(self, name: str, passphrase: str | None) -> Ed25519PrivateKey:
        info = self.get(name)
        if info.revoked:
            raise UsageError(f"key {name!r} is revoked")
        pem = self._paths(name)[1].read_bytes()
        try:
            key = serialization.load_pem_private_key(pem, passphrase.encode() if passphrase else None)
        except (TypeError, ValueError):
            raise UsageError(f"cannot unlock key {name!r}: wrong or missing passphrase") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise VerificationError(f"key file for {name!r} is not an Ed25519 key")
        return key

    def gate_key(self) -> tuple[Ed25519PrivateKey, KeyInfo]:
        """The gate runner's signing key, created on first use."""
        secret = os.environ.get("WEIGHTGATE_GATE_PASSPHRASE")
        if not self._paths(GATE_KEY)[0].exists():
            self.create(GATE_KEY, GATE_ROLE, secret)
        return self.private(GATE_KEY, secret), self.get(GATE_KEY)

    def trusted(self, *roles: str) -> dict[str, Ed25519PublicKey]:
        """keyid -> public key of unrevoked keys with one of `roles` (all roles when none given)."""
        return {k.keyid: k.public() for k in self.list()
                if not k.revoked and (not roles or k.role in roles)}

    def by_keyid(self, keyid: str) -> KeyInfo:
        for k in self.list():
            if k.keyid == keyid:
                return k
        raise VerificationError(f"no key with id {keyid[:12]} in {self.dir}")
