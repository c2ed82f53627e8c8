import json

import pytest

from governance.errors import UsageError
from governance.keys import MIN_PASSPHRASE, KeyRing, passphrase_from_env

SECRET = "correct horse battery"


def test_create_list_and_unlock(tmp_path):
    ring = KeyRing(tmp_path)
    info = ring.create("dana", "approver", SECRET)
    assert [k.name for k in ring.list()] == ["dana"]
    assert info.role == "approver" and len(info.keyid) == 64
    sealed = json.loads((tmp_path / "dana.key").read_bytes())
    assert sealed["kdf"]["name"] == "scrypt" and sealed["kdf"]["n"] >= 2**16 and sealed["cipher"] == "aes-256-gcm"
    assert (tmp_path / "dana.key").stat().st_mode & 0o077 == 0
    signer = ring.signer("dana", SECRET)
    assert signer.key.public_key().public_bytes_raw() == info.public().public_bytes_raw()


def test_the_private_key_never_touches_disk_in_the_clear(tmp_path):
    ring = KeyRing(tmp_path)
    ring.create("dana", "approver", SECRET)
    raw = ring.signer("dana", SECRET).key.private_bytes_raw()
    for p in tmp_path.iterdir():
        data = p.read_bytes()
        assert raw not in data and raw.hex().encode() not in data
        import base64

        assert base64.b64encode(raw) not in data


def test_wrong_passphrase_short_passphrase_role_name_and_duplicate(tmp_path):
    ring = KeyRing(tmp_path)
    ring.create("dana", "approver", SECRET)
    with pytest.raises(UsageError, match="wrong passphrase"):
        ring.signer("dana", "not the passphrase")
    with pytest.raises(UsageError, match="no passphrase"):
        ring.signer("dana", None)
    with pytest.raises(UsageError, match=f"at least {MIN_PASSPHRASE} characters"):
        ring.create("eve", "approver", "x")
    with pytest.raises(UsageError, match=f"at least {MIN_PASSPHRASE} characters"):
        ring.create("eve", "approver", "a" * (MIN_PASSPHRASE - 1))
    with pytest.raises(UsageError, match="unknown role"):
        ring.create("eve", "admin", SECRET)
    with pytest.raises(UsageError, match="invalid key name"):
        ring.create("../escape", "approver", SECRET)
    with pytest.raises(UsageError, match="already exists"):
        ring.create("dana", "approver", SECRET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dana.json", "dana.key"]


def test_a_swapped_key_file_is_refused(tmp_path):
    """The sealed key must be the one its public record names."""
    ring = KeyRing(tmp_path)
    ring.create("dana", "approver", SECRET)
    ring.create("erin", "approver", SECRET)
    (tmp_path / "dana.key").write_bytes((tmp_path / "erin.key").read_bytes())
    with pytest.raises(UsageError):  # sealed under erin's name: does not even decrypt as dana's
        ring.signer("dana", SECRET)


def test_own_keys_dir_comes_first_and_stays_out_of_the_store(tmp_path, monkeypatch):
    laptop, store_keys = tmp_path / "laptop", tmp_path / "store-keys"
    monkeypatch.setenv("WEIGHTGATE_KEYS_DIR", str(laptop))
    ring = KeyRing(store_keys)
    ring.create("ruth", "approver", SECRET)
    assert (laptop / "ruth.key").is_file() and not store_keys.exists()
    assert ring.signer("ruth", SECRET).name == "ruth"
    monkeypatch.delenv("WEIGHTGATE_KEYS_DIR")
    with pytest.raises(UsageError, match="unknown key 'ruth'"):
        KeyRing(store_keys).signer("ruth", SECRET)


def test_passphrase_env(monkeypatch):
    monkeypatch.setenv("WEIGHTGATE_PASSPHRASE", "general")
    monkeypatch.setenv("WEIGHTGATE_PASSPHRASE_CI_BOT_1", "specific")
    assert passphrase_from_env("ci-bot.1") == "specific"
    assert passphrase_from_env("other") == "general"


def test_gate_key_from_the_store_or_a_file_outside_it(tmp_path, monkeypatch):
    monkeypatch.delenv("WEIGHTGATE_GATE_KEY_FILE", raising=False)
    monkeypatch.delenv("WEIGHTGATE_GATE_PASSPHRASE", raising=False)
    ring = KeyRing(tmp_path / "keys")
    with pytest.raises(UsageError, match="WEIGHTGATE_GATE_PASSPHRASE"):
        ring.gate_signer(create=True)
    monkeypatch.setenv("WEIGHTGATE_GATE_PASSPHRASE", "gate passphrase for ci")
    a = ring.gate_signer(create=True)
    assert ring.gate_signer().keyid == a.keyid
    assert b"PRIVATE" not in (tmp_path / "keys" / "weightgate-gate.key").read_bytes()
    # CI: the sealed key lives outside the store and is named by the environment
    outside = tmp_path / "ci-secret.key"
    outside.write_bytes((tmp_path / "keys" / "weightgate-gate.key").read_bytes())
    monkeypatch.setenv("WEIGHTGATE_GATE_KEY_FILE", str(outside))
    assert KeyRing(tmp_path / "empty").gate_signer().keyid == a.keyid
