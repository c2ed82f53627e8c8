"""Tampering anywhere in the ledger rows or the blobs makes verify fail, naming what is wrong;
forged, replayed, self- and wrong-role approvals are refused."""

import os
import shutil
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance import approvals
from governance.errors import VerificationError
from governance.keys import KeyRing
from governance.ledger import Ledger
from governance.proposals import ProposalStore
from governance.signing import sha256_hex, sign_envelope, statement
from tests.conftest import PASSPHRASES, trusted_store
from tests.update_pipeline.test_ledger_flow import promote_chain
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.promote import status
from update_pipeline.service import Weightgate


@pytest.fixture(scope="module")
def promoted(tmp_path_factory, base_model):
    """A store with two promoted versions, made once for the module and copied per test."""
    from governance.store import Store
    from update_pipeline import world

    root = tmp_path_factory.mktemp("promoted")
    mp = pytest.MonkeyPatch()
    for name, secret in PASSPHRASES.items():
        mp.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    s = Store.locate(root / "home")
    s.init(world.policy(root / "policy.yaml"))  # the default, the world's invented names allowed
    trusted_store(s)
    promote_chain(s, base_model, root, n=2)
    mp.undo()
    return s


@pytest.fixture
def copy(promoted, tmp_path):
    from governance.store import Store

    shutil.copytree(promoted.home, tmp_path / "home", symlinks=True)
    return Store.locate(tmp_path / "home")


def _rows(store):
    with sqlite3.connect(store.home / "ledger.db") as db:
        return db.execute("SELECT seq, digest, envelope FROM ledger_entries ORDER BY seq").fetchall()


def _set(store, seq, column, value):
    with sqlite3.connect(store.home / "ledger.db") as db:
        db.execute(f"UPDATE ledger_entries SET {column} = ? WHERE seq = ?", (value, seq))


def test_clean_store_verifies(copy):
    summary = verify_store(copy)
    assert summary["entries"] == 7 and summary["champion"] == 2 and summary["blobs"] > 10


@pytest.mark.parametrize("seq", [1, 2, 3, 5, 7])
def test_flipped_byte_in_any_envelope_position(copy, seq):
    _, digest, envelope = _rows(copy)[seq - 1]
    for pos in range(0, len(envelope), max(1, len(envelope) // 25)):
        bad = bytearray(envelope)
        bad[pos] ^= 0x01
        _set(copy, seq, "envelope", bytes(bad))
        with pytest.raises(VerificationError, match=f"ledger entry {seq}"):
            verify_store(copy)
    _set(copy, seq, "envelope", envelope)
    verify_store(copy)


@pytest.mark.parametrize("seq", [1, 3, 5, 7])
def test_flipped_digest_and_sequence(copy, seq):
    _, digest, _ = _rows(copy)[seq - 1]
    _set(copy, seq, "digest", ("0" if digest[0] != "0" else "1") + digest[1:])
    with pytest.raises(VerificationError, match=f"ledger entry {seq}: stored digest"):
        verify_store(copy)
    _set(copy, seq, "digest", digest)
    _set(copy, seq, "seq", seq + 100)
    with pytest.raises(VerificationError, match="sequence number"):
        verify_store(copy)


def test_deleted_or_reordered_entries(copy):
    rows = _rows(copy)
    with sqlite3.connect(copy.home / "ledger.db") as db:
        db.execute("DELETE FROM ledger_entries WHERE seq = 6")
        db.execute("UPDATE ledger_entries SET seq = 6 WHERE seq = 7")
    with pytest.raises(VerificationError, match="ledger entry 6: chain broken"):
        verify_store(copy)
    assert len(rows) == 7


def test_flipped_byte_in_every_kind_of_blob(copy):
    blobs = sorted(p for p in copy.blobs_dir.rglob("*") if p.is_file())
    assert len(blobs) > 10
    for p in blobs:  # every blob, whichever entry (or proposal) it belongs to
        raw = p.read_bytes()
        os.chmod(p, 0o644)
        p.write_bytes(bytes([raw[0] ^ 1]) + raw[1:])
        with pytest.raises(VerificationError, match=rf"blob {p.name[:12]} is corrupt"):
            verify_store(copy)
        p.write_bytes(raw)
    verify_store(copy)


def test_missing_blob(copy):
    victim = next(p for p in copy.blobs_dir.rglob("*") if p.is_file())
    victim.unlink()
    with pytest.raises(VerificationError, match="is missing"):
        verify_store(copy)


@pytest.fixture
def checked(store, base_model, full_candidate, update_data):
    a = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase", note="a")
    b = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase", note="b")
    check(store, a.id)
    check(store, b.id)
    return a.id, b.id


def test_replayed_approval_is_refused(store, checked):
    a, b = checked
    Weightgate(store).approve(a, "bob", "for a")
    proposals = ProposalStore.of(store, Ledger.of(store).entries())
    (_, env), = proposals.decisions(proposals.load(a))
    proposals.add_decision(b, "bob", env)  # replay a's approval onto b
    st = status(store, b)
    assert st.approved_by == () and st.missing == 1
    assert "another proposal or an earlier report" in st.refused[0]


def test_forged_and_self_approvals_are_refused(store, checked):
    a, _ = checked
    keys = KeyRing(store.keys_dir)
    proposals = ProposalStore.of(store, Ledger.of(store).entries())
    prop = proposals.load(a)
    report_env, _ = proposals.latest_report(prop)
    pred = {"proposal": a, "decision": "approve", "comment": "", "approver": "bob", "created": 0}
    body = statement({"report": sha256_hex(report_env)}, "Approval/v1", pred)
    forged = sign_envelope(body, Ed25519PrivateKey.generate(), keys.get("bob").keyid)  # claims bob's key id
    proposals.add_decision(a, "bob", forged)
    self_signed = sign_envelope(body, keys.signer("alice", "alice-passphrase").key, keys.get("alice").keyid)
    proposals.add_decision(a, "alice", self_signed)
    auditor = sign_envelope(body, keys.signer("carol", "carol-passphrase").key, keys.get("carol").keyid)
    proposals.add_decision(a, "carol", auditor)
    st = status(store, a)
    assert st.approved_by == () and len(st.refused) == 3
    text = " ".join(st.refused)
    assert "does not verify" in text and "alice (proposer)" in text and "carol (auditor)" in text


def test_revoked_key_does_not_count(store, checked):
    a, _ = checked
    Weightgate(store).approve(a, "bob", "")
    Weightgate(store).trust_revoke("bob", ["dan"])
    st = status(store, a)
    assert st.approved_by == () and st.missing == 1 and "no signature by a key of root v2" in st.refused[0]
    assert approvals.ApprovalStatus(1).describe().startswith("approvals 0/1")
