import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.errors import VerificationError
from governance.signing import STATEMENT_TYPE, pae, sign_envelope, statement, verify_envelope


@pytest.fixture
def signed():
    key = Ed25519PrivateKey.generate()
    payload = statement({"model.safetensors": "ab" * 32}, "Test/v1", {"x": 1})
    return key, sign_envelope(payload, key, "k1"), payload


def test_roundtrip_returns_statement(signed):
    key, env, payload = signed
    keyid, body = verify_envelope(env, {"k1": key.public_key()})
    assert keyid == "k1"
    assert body["_type"] == STATEMENT_TYPE
    assert body["subject"] == [{"name": "model.safetensors", "digest": {"sha256": "ab" * 32}}]
    assert body["predicateType"].endswith("Test/v1")
    assert json.loads(env)["payload"]  # stored as base64 of the exact payload bytes


def test_pae_matches_dsse_spec():
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_every_flipped_byte_fails(signed):
    key, env, _ = signed
    trusted = {"k1": key.public_key()}
    step = max(1, len(env) // 97)
    for i in range(0, len(env), step):
        bad = bytearray(env)
        bad[i] ^= 0x01
        try:
            keyid, body = verify_envelope(bytes(bad), trusted)
        except VerificationError:
            continue
        # a flip may land in JSON whitespace-free structure only if it still means the same bytes
        pytest.fail(f"flipping byte {i} still verified")


def test_untrusted_key_and_forged_signature(signed):
    key, env, payload = signed
    other = Ed25519PrivateKey.generate()
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        verify_envelope(env, {"k2": other.public_key()})
    forged = sign_envelope(payload, other, "k1")  # claims k1's id with another key
    with pytest.raises(VerificationError, match="does not verify"):
        verify_envelope(forged, {"k1": key.public_key()})


def test_not_an_envelope():
    with pytest.raises(VerificationError, match="not a JSON DSSE envelope"):
        verify_envelope(b"\x00garbage", {})
