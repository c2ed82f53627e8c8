"""Ed25519 keys: private halves sealed with scrypt + AES-256-GCM, public records beside them.

A key file grants nothing: who may do what is read from the signed trust root
(governance.trust). A keyring is a folder of NAME.json (public record) and NAME.key
(the sealed private key). Where keys live:

- ``WEIGHTGATE_KEYS_DIR``: a folder on the signer's own machine (an approver's laptop),
  searched first, so a key can be used from the CLI without ever entering the store;
- the store's ``keys/`` folder (the embedded default).

The private half never touches disk unencrypted: scrypt (n=2**16, r=8, p=1, 64 MiB)
derives an AES-256-GCM key from a passphrase of at least MIN_PASSPHRASE characters.
The gate runner's key signs reports only. CI provides it as a sealed file outside the
store (``WEIGHTGATE_GATE_KEY_FILE``) or in the store, either way unlocked with
``WEIGHTGATE_GATE_PASSPHRASE``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from governance.errors import UsageError, VerificationError
from governance.signing import sha256_hex

ROLES = ("root", "proposer", "approver", "operator", "auditor", "gate")
GATE_KEY, GATE_ROLE = "weightgate-gate", "gate"
MIN_PASSPHRASE = 12
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_FORMAT = "weightgate.key/v1"


@dataclass(frozen=True)
class KeyInfo:
    """A key's public record. `role` is the role asked for at creation: a hint for the root's admins."""

    name: str
    role: str
    keyid: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    created: float

    def public(self) -> Ed25519PublicKey:
        return public_key(self.public_key)


@dataclass(frozen=True)
class Signer:
    """An unlocked key, ready to sign."""

    name: str
    keyid: str
    key: Ed25519PrivateKey


def public_key(b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))
    except ValueError as exc:
        raise VerificationError(f"not an Ed25519 public key ({exc})") from None


def keyid_of(b64: str) -> str:
    return sha256_hex(base64.b64decode(b64))


def passphrase_from_env(name: str) -> str | None:
    """WEIGHTGATE_PASSPHRASE_<NAME> (upper case, '-' and '.' as '_'), then WEIGHTGATE_PASSPHRASE."""
    specific = "WEIGHTGATE_PASSPHRASE_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    return os.environ.get(specific) or os.environ.get("WEIGHTGATE_PASSPHRASE")


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal_private(key: Ed25519PrivateKey, passphrase: str, name: str) -> bytes:
    if len(passphrase or "") < MIN_PASSPHRASE:
        raise UsageError(f"key {name!r} needs a passphrase of at least {MIN_PASSPHRASE} characters")
    salt, nonce = os.urandom(16), os.urandom(12)
    raw = key.private_bytes_raw()
    sealed = AESGCM(_kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, raw, name.encode())
    doc = {"format": _FORMAT, "name": name, "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R,
                                                    "p": SCRYPT_P, "salt": base64.b64encode(salt).decode()},
           "cipher": "aes-256-gcm", "nonce": base64.b64encode(nonce).decode(),
           "ciphertext": base64.b64encode(sealed).decode()}
    return (json.dumps(doc, indent=2) + "\n").encode()


def unseal_private(data: bytes, passphrase: str | None, name: str, where: str) -> Ed25519PrivateKey:
    try:
        doc = json.loads(data)
        kdf = doc["kdf"]
        if doc.get("format") != _FORMAT or kdf.get("name") != "scrypt" or kdf["n"] < 2**14:
            raise ValueError("unknown format or a KDF weaker than scrypt n=2**14")
        salt, nonce = base64.b64decode(kdf["salt"]), base64.b64decode(doc["nonce"])
        sealed = base64.b64decode(doc["ciphertext"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{where}: not a weightgate key file ({exc})") from None
    if not passphrase:
        raise UsageError(f"cannot unlock key {name!r}: no passphrase (set WEIGHTGATE_PASSPHRASE_"
                         f"{re.sub(r'[^A-Z0-9]', '_', name.upper())} or answer the prompt)")
    try:
        raw = AESGCM(_kek(passphrase, salt, kdf["n"], kdf["r"], kdf["p"])).decrypt(nonce, sealed, name.encode())
    except InvalidTag:
        raise UsageError(f"cannot unlock key {name!r}: wrong passphrase") from None
    return Ed25519PrivateKey.from_private_bytes(raw)


class KeyRing:
    """Key files: the signer's own folder (WEIGHTGATE_KEYS_DIR) first, then the store's keys/."""

    def __init__(self, keys_dir: Path, own_dir: Path | None = None) -> None:
        self.dir = keys_dir
        env = os.environ.get("WEIGHTGATE_KEYS_DIR")
        self.own = own_dir or (Path(env).expanduser().resolve() if env else None)

    @property
    def dirs(self) -> list[Path]:
        return [d for d in (self.own, self.dir) if d is not None]

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME.match(name):
            raise UsageError(f"invalid key name {name!r}: use lower-case letters, digits, '.', '_', '-'")

    def _find(self, name: str) -> Path:
        self._check_name(name)
        for d in self.dirs:
            if (d / f"{name}.json").is_file():
                return d
        raise UsageError(f"unknown key {name!r} (see 'weightgate keys list')")

    def create(self, name: str, role: str, passphrase: str | None, where: Path | None = None) -> KeyInfo:
        self._check_name(name)
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
        folder = where or self.own or self.dir
        if any((d / f"{name}.json").exists() for d in {folder, *self.dirs}):
            raise UsageError(f"key {name!r} already exists")
        key = Ed25519PrivateKey.generate()
        sealed = seal_private(key, passphrase or "", name)
        raw = key.public_key().public_bytes_raw()
        info = KeyInfo(name, role, sha256_hex(raw), base64.b64encode(raw).decode(), round(time.time(), 3))
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(sealed)
        (folder / f"{name}.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
        return info

    def get(self, name: str) -> KeyInfo:
        path = self._find(name) / f"{name}.json"
        try:
            return KeyInfo(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{path}: not a key record ({exc})") from None

    def list(self) -> list[KeyInfo]:
        names = sorted({p.stem for d in self.dirs if d.is_dir() for p in d.glob("*.json")})
        return [self.get(n) for n in names]

    def holds_private(self, name: str) -> bool:
        """Whether this keyring holds the (sealed) private key, not only the public record."""
        return (self._find(name) / f"{name}.key").is_file()

    def signer(self, name: str, passphrase: str | None) -> Signer:
        """Unlock a key. Whether it may sign anything is the trust root's decision, not this file's."""
        folder = self._find(name)
        info = self.get(name)
        path = folder / f"{name}.key"
        if not path.is_file():
            raise UsageError(f"key {name!r}: only its public record is here ({folder}); sign where its "
                             "private key lives")
        key = unseal_private(path.read_bytes(), passphrase, name, str(path))
        if key.public_key().public_bytes_raw() != base64.b64decode(info.public_key):
            raise VerificationError(f"{path} does not hold the key its record {name}.json names")
        return Signer(name, info.keyid, key)

    def gate_signer(self, create: bool = False) -> Signer:
        """The gate runner's key: WEIGHTGATE_GATE_KEY_FILE, else keys/weightgate-gate.key, unlocked with
        WEIGHTGATE_GATE_PASSPHRASE."""
        secret = os.environ.get("WEIGHTGATE_GATE_PASSPHRASE")
        outside = os.environ.get("WEIGHTGATE_GATE_KEY_FILE")
        if not secret:
            raise UsageError("the gate runner's key is unlocked with WEIGHTGATE_GATE_PASSPHRASE (at least "
                             f"{MIN_PASSPHRASE} characters), which is not set")
        if outside:
            path = Path(outside).expanduser()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"WEIGHTGATE_GATE_KEY_FILE {path}: {exc.strerror}") from None
            key = unseal_private(data, secret, GATE_KEY, str(path))
            raw = key.public_key().public_bytes_raw()
            return Signer(GATE_KEY, sha256_hex(raw), key)
        if create and not (self.dir / f"{GATE_KEY}.json").exists():
            self.create(GATE_KEY, GATE_ROLE, secret, where=self.dir)
        return self.signer(GATE_KEY, secret)
