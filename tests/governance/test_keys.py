import pytest

from governance.errors import UsageError
from governance.keys import KeyRing, passphrase_from_env


def test_create_list_and_unlock(tmp_path):
    ring = KeyRing(tmp_path)
    info = ring.create("dana", "approver", "s3cret")
    assert [k.name for k in ring.list()] == ["dana"]
    assert info.role == "approver" and len(info.keyid) == 64
    pem = (tmp_path / "dana.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert (tmp_path / "dana.pem").stat().st_mode & 0o077 == 0
    key = ring.private("dana", "s3cret")
    assert key.public_key().public_bytes_raw() == info.public().public_bytes_raw()


def test_wrong_passphrase_role_name_and_duplicate(tmp_path):
    ring = KeyRing(tmp_path)
    ring.create("dana", "approver", "s3cret")
    with pytest.raises(UsageError, match="wrong or missing passphrase"):
        ring.private("dana", "nope")
    with pytest.raises(UsageError, match="unknown role"):
        ring.create("eve", "admin", "x")
    with pytest.raises(UsageError, match="invalid key name"):
        ring.create("../escape", "approver", "x")
    with pytest.raises(UsageError, match="already exists"):
        ring.create("dana", "approver", "x")
    with pytest.raises(UsageError, match="needs a passphrase"):
        ring.create("frank", "proposer", None)


def test_passphrase_env(monkeypatch):
    monkeypatch.setenv("WEIGHTGATE_PASSPHRASE", "general")
    monkeypatch.setenv("WEIGHTGATE_PASSPHRASE_CI_BOT_1", "specific")
    assert passphrase_from_env("ci-bot.1") == "specific"
    assert passphrase_from_env("other") == "general"


def test_gate_key_is_created_once(tmp_path):
    ring = KeyRing(tmp_path)
    _, a = ring.gate_key()
    _, b = ring.gate_key()
    assert a.keyid == b.keyid and a.role == "gate"
    assert set(ring.trusted("gate")) == {a.keyid}
