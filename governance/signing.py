"""DSSE envelopes carrying in-toto Statement v1 payloads, signed with Ed25519.

The payload bytes are canonicalized once, signed over DSSE's pre-authentication
encoding, and stored as they are. Verification reads the stored envelope bytes and
never re-serializes a payload; it returns the verified statement or raises.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.errors import VerificationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_BASE = "https://weightgate.dev/"


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the one byte form that gets hashed or signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(subjects: Mapping[str, str], predicate_type: str, predicate: Mapping[str, Any]) -> bytes:
    """An in-toto Statement v1; `subjects` maps a name to its sha256 hex digest."""
    if not subjects:
        raise ValueError("an in-toto statement needs at least one subject")
    body = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in sorted(subjects.items())],
        "predicateType": PREDICATE_BASE + predicate_type,
        "predicate": dict(predicate),
    }
    return canonical_json(body)


def sign_envelope(payload: bytes, key: Ed25519PrivateKey, keyid: str,
                  payload_type: str = PAYLOAD_TYPE) -> bytes:
    """Return the envelope's exact bytes, ready to store."""
    return sign_envelope_by(payload, [(key, keyid)], payload_type)


def sign_envelope_by(payload: bytes, signers: Sequence[tuple[Ed25519PrivateKey, str]],
                     payload_type: str = PAYLOAD_TYPE) -> bytes:
    """One envelope signed by several keys (a threshold), each over the same PAE bytes."""
    if not signers:
        raise ValueError("an envelope needs at least one signature")
    message = pae(payload_type, payload)
    env = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(key.sign(message)).decode("ascii")}
                       for key, keyid in signers],
    }
    return canonical_json(env)


def verify_signers(envelope: bytes, trusted: Mapping[str, Ed25519PublicKey], where: str = "envelope",
                   whose: str = "a trusted key") -> tuple[set[str], dict[str, Any]]:
    """Every key id among `trusted` whose signature verifies, and the statement.

    A signature by a trusted key that does not verify is an error, not a signature to skip;
    signatures by keys not in `trusted` count for nothing. Raises when none verifies.
    """
    env, payload = _open(envelope, where)
    message = pae(PAYLOAD_TYPE, payload)
    signed: set[str] = set()
    present = []
    for sig in env["signatures"]:
        keyid = sig.get("keyid") if isinstance(sig, dict) else None
        key = trusted.get(keyid) if isinstance(keyid, str) else None
        if key is None:
            present.append(str(keyid)[:12])
            continue
        try:
            key.verify(_b64(sig.get("sig"), f"{where}: signature"), message)
        except InvalidSignature:
            raise VerificationError(f"{where}: signature by key {keyid[:12]} does not verify") from None
        signed.add(keyid)
    if not signed:
        raise VerificationError(f"{where}: no signature by {whose} (signed by key id(s) "
                                f"{', '.join(present) or 'none'})")
    return signed, _statement(payload, where)


def unverified_statement(envelope: bytes, where: str = "envelope") -> dict[str, Any]:
    """The statement inside, before any signature is checked: only to learn which keys to check with."""
    return _statement(_open(envelope, where)[1], where)


def _open(envelope: bytes, where: str) -> tuple[dict[str, Any], bytes]:
    try:
        env = json.loads(envelope)
    except (ValueError, RecursionError, TypeError) as exc:  # bad JSON, deep nesting, an integer too long
        raise VerificationError(f"{where}: not a JSON DSSE envelope ({str(exc)[:80]})") from None
    if not isinstance(env, dict) or not isinstance(env.get("signatures"), list):
        raise VerificationError(f"{where}: not a DSSE envelope")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise VerificationError(f"{where}: unexpected payloadType {env.get('payloadType')!r}")
    return env, _b64(env.get("payload"), f"{where}: payload")


def _statement(payload: bytes, where: str) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise VerificationError(f"{where}: payload is not plain JSON ({str(exc)[:80]})") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"{where}: payload is not an in-toto Statement v1")
    return body


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise VerificationError(f"{what} is not valid base64") from exc


def verify_envelope(envelope: bytes, trusted: Mapping[str, Ed25519PublicKey],
                    where: str = "envelope") -> tuple[str, dict[str, Any]]:
    """Verify an envelope signed by one trusted key; returns (its key id, the statement)."""
    signed, body = verify_signers(envelope, trusted, where)
    return sorted(signed)[0], body


def subject_digests(body: Mapping[str, Any]) -> dict[str, str]:
    """name -> sha256 of a verified statement's subjects."""
    subjects: Sequence[Mapping[str, Any]] = body.get("subject", [])
    return {s["name"]: s["digest"]["sha256"] for s in subjects}
