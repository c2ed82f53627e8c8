"""Update data at rest: AES-256-GCM with one key per update, kept apart from the ledger chain.

The ciphertext lives in the blob store (nonce || ciphertext+tag); the key lives in the
ledger database's mutable ``data_keys`` table. Destroying the key crypto-shreds the
data: the blob stays, its hash stays in the ledger, its plaintext is gone.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.blobs import BlobStore
from governance.errors import VerificationError
from governance.signing import sha256_hex


def seal(blobs: BlobStore, plaintext: bytes, aad: bytes, key: bytes | None = None) -> tuple[str, bytes, str]:
    """Encrypt and store (under `key`, or a new one); returns (blob digest, key, key id). The key id is sha256
    of the key."""
    key = key or AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    blob = blobs.put_bytes(nonce + AESGCM(key).encrypt(nonce, plaintext, aad))
    return blob, key, sha256_hex(key)


def open_sealed(blobs: BlobStore, blob: str, key: bytes | None, aad: bytes) -> bytes:
    if key is None:
        raise VerificationError(f"data blob {blob[:12]} has been crypto-shredded (its key is destroyed)")
    data = blobs.read(blob)
    try:
        return AESGCM(key).decrypt(data[:12], data[12:], aad)
    except InvalidTag:
        raise VerificationError(f"data blob {blob[:12]} does not decrypt with its key") from None
