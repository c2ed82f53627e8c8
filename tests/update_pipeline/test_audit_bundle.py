"""The audit bundle verifies offline with no store, and one flipped byte anywhere fails it."""

import json
import shutil
import subprocess
import sys

import pytest

from governance.audit_bundle import FILES, verify_bundle
from governance.errors import VerificationError
from tests.update_pipeline.test_tamper import promoted  # noqa: F401  (module-scoped store)
from update_pipeline.audit import export


@pytest.fixture(scope="module")
def bundle(promoted, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("bundle") / "audit"
    export(promoted, out)
    return out


def test_bundle_contents_and_offline_verify(bundle, tmp_path):
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*FILES, "SHA256SUMS"])
    lines = (bundle / "ledger.intoto.jsonl").read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["payloadType"] == "application/vnd.in-toto+json"
                                   for line in lines)
    atts = (bundle / "attestations.intoto.jsonl").read_bytes().splitlines()
    assert len(atts) == 2 * 3  # per promotion: manifest, report, one approval
    assert "weightgate audit verify" in (bundle / "README.md").read_text()

    moved = tmp_path / "elsewhere"  # another machine: a copy, no store, no environment
    shutil.copytree(bundle, moved)
    pins = tmp_path / "pins.json"
    shutil.copyfile(bundle / "keys.json", pins)
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(tmp_path / "none"),
                        "audit", "verify", str(moved), "--trust", str(pins)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "3 ledger entries" in r.stdout and not (tmp_path / "none").exists()


def test_every_flipped_byte_fails(bundle, tmp_path):
    for name in [*FILES, "SHA256SUMS"]:
        raw = (bundle / name).read_bytes()
        for pos in range(0, len(raw), max(1, len(raw) // 15)):
            copy = tmp_path / f"c-{name}-{pos}"
            shutil.copytree(bundle, copy)
            bad = bytearray(raw)
            bad[pos] ^= 0x01
            (copy / name).write_bytes(bytes(bad))
            with pytest.raises(VerificationError):
                verify_bundle(copy)
            shutil.rmtree(copy)


def test_swapped_key_with_fixed_checksums(bundle, tmp_path):
    """An attacker's key in keys.json, checksums recomputed: the signatures no longer match it,
    and with pinned keys the bundle's own keys.json is not consulted at all."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from governance.signing import sha256_hex

    copy = tmp_path / "forged"
    shutil.copytree(bundle, copy)
    keys = json.loads((copy / "keys.json").read_text())
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    gate = next(k for k in keys if k["role"] == "gate")
    gate["public_key"] = base64.b64encode(raw).decode()
    (copy / "keys.json").write_text(json.dumps(keys))
    (copy / "SHA256SUMS").write_text("".join(f"{sha256_hex((copy / f).read_bytes())}  {f}\n" for f in FILES))
    with pytest.raises(VerificationError, match="ledger entry 1"):
        verify_bundle(copy)
    assert verify_bundle(copy, trust=bundle / "keys.json")["pinned_keys"] is True
