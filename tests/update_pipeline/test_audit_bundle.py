"""The audit bundle verifies offline with no store against an anchor the auditor brings; one flipped
byte anywhere, a dropped entry or a bundle forged with an attacker's keys fails it."""

import json
import shutil
import subprocess
import sys

import pytest

from governance.audit_bundle import FILES, verify_bundle
from governance.errors import VerificationError
from governance.signing import sha256_hex
from tests.update_pipeline.test_tamper import promoted  # noqa: F401  (module-scoped store)
from update_pipeline.audit import export


@pytest.fixture(scope="module")
def bundle(promoted, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("bundle") / "audit"
    export(promoted, out)
    return out


@pytest.fixture(scope="module")
def anchor(promoted):  # noqa: F811
    return json.loads((promoted.home / "config.json").read_text())["root_fingerprint"]


def _resum(folder):
    (folder / "SHA256SUMS").write_text("".join(f"{sha256_hex((folder / f).read_bytes())}  {f}\n" for f in FILES))


def _cli(*args, home):
    return subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(home), "audit", "verify", *args],
                          capture_output=True, text=True)


def test_bundle_contents_and_offline_verify(bundle, anchor, tmp_path):
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*FILES, "SHA256SUMS"])
    lines = (bundle / "ledger.intoto.jsonl").read_bytes().splitlines()
    assert len(lines) == 7 and all(json.loads(line)["payloadType"] == "application/vnd.in-toto+json"
                                   for line in lines)
    atts = (bundle / "attestations.intoto.jsonl").read_bytes().splitlines()
    assert len(atts) == 2 * 3  # per promotion: manifest, report, one approval
    assert "weightgate audit verify" in (bundle / "README.md").read_text()

    moved = tmp_path / "elsewhere"  # another machine: a copy, no store, no environment
    shutil.copytree(bundle, moved)
    r = _cli(str(moved), "--root-fingerprint", anchor, home=tmp_path / "none")
    assert r.returncode == 0, r.stderr
    assert "7 ledger entries" in r.stdout and not (tmp_path / "none").exists()
    pinned = tmp_path / "root.json"
    shutil.copyfile(bundle / "root.json", pinned)  # as if pinned earlier with 'trust show --json'
    assert _cli(str(moved), "--trust", str(pinned), home=tmp_path / "none").returncode == 0


def test_no_anchor_no_verdict(bundle, tmp_path):
    r = _cli(str(bundle), home=tmp_path / "none")
    assert r.returncode == 1 and "no trust anchor" in r.stderr and "--root-fingerprint" in r.stderr
    with pytest.raises(VerificationError, match="no trust anchor"):
        verify_bundle(bundle)


def test_every_flipped_byte_fails(bundle, anchor, tmp_path):
    for name in [*FILES, "SHA256SUMS"]:
        raw = (bundle / name).read_bytes()
        for pos in range(0, len(raw), max(1, len(raw) // 15)):
            copy = tmp_path / f"c-{name}-{pos}"
            shutil.copytree(bundle, copy)
            bad = bytearray(raw)
            bad[pos] ^= 0x01
            (copy / name).write_bytes(bytes(bad))
            with pytest.raises(VerificationError):
                verify_bundle(copy, root_fingerprint=anchor)
            shutil.rmtree(copy)


def test_dropped_last_entry_with_fixed_checksums_fails(bundle, anchor, tmp_path):
    copy = tmp_path / "truncated"
    shutil.copytree(bundle, copy)
    lines = (copy / "ledger.intoto.jsonl").read_bytes().splitlines(keepends=True)
    (copy / "ledger.intoto.jsonl").write_bytes(b"".join(lines[:-1]))
    _resum(copy)
    with pytest.raises(VerificationError, match="checkpoint of ledger entry 7.*has 6 entries"):
        verify_bundle(copy, root_fingerprint=anchor)
    r = _cli(str(copy), "--root-fingerprint", anchor, home=tmp_path / "none")
    assert r.returncode == 1 and "entries were deleted" in r.stderr


def test_bundle_forged_with_an_attackers_keys(bundle, anchor, tmp_path, base_model, monkeypatch):
    """Mallory builds a whole ledger of her own (her root, her approver) and ships it as ours: it is
    internally consistent, so only the auditor's anchor tells it apart."""
    from governance.store import Store
    from tests.conftest import PASSPHRASES, trusted_store
    from tests.update_pipeline.test_ledger_flow import promote_chain
    from update_pipeline import world

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    fake = Store.locate(tmp_path / "mallory")
    fake.init(world.policy(tmp_path / "policy.yaml"))  # the policy our store has
    trusted_store(fake)  # same names, her own fresh keys
    promote_chain(fake, base_model, tmp_path, n=1)
    forged = tmp_path / "forged"
    export(fake, forged)
    with pytest.raises(VerificationError, match="no trust anchor"):
        verify_bundle(forged)
    with pytest.raises(VerificationError, match="no root version has the pinned fingerprint"):
        verify_bundle(forged, root_fingerprint=anchor)
    r = _cli(str(forged), "--root-fingerprint", anchor, home=tmp_path / "none")
    assert r.returncode == 1 and "not the ledger you pinned" in r.stderr
