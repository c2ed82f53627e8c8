"""What the gates checked and the approvers read is what gets promoted: a base changed after the check,
data swapped under an unsigned side file, or a newer report than the one read, are refused before
anything is written."""

import json
import shutil

import pytest

from governance.errors import CheckFailed, VerificationError
from tests.conftest import tree_digest
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate


@pytest.fixture
def approved(store, base_model, full_candidate, update_data, tmp_path):
    """A checked and approved proposal against a base folder of its own (so the test may change it)."""
    base = tmp_path / "base"
    shutil.copytree(base_model, base)
    p = propose(store, str(base), full_candidate, update_data, "alice", "alice-passphrase")
    assert check(store, p.id).report["verdict"] == "pass"
    Weightgate(store).approve(p.id, "bob")
    return p.id, base


def _ledger_rows(store):
    import sqlite3

    with sqlite3.connect(store.home / "ledger.db") as db:
        return db.execute("SELECT COUNT(*) FROM ledger_entries").fetchone()[0]


@pytest.mark.parametrize("what", ["weights", "tokenizer"])
def test_base_changed_after_approval_is_not_promoted(store, approved, what):
    pid, base = approved
    if what == "weights":
        w = base / "model.safetensors"
        raw = bytearray(w.read_bytes())
        raw[-1] ^= 1  # one bit of one weight
        w.write_bytes(bytes(raw))
    else:
        tok = next(p for p in base.iterdir() if p.name.startswith("tokenizer"))
        tok.write_bytes(tok.read_bytes() + b" ")
    rows, before = _ledger_rows(store), tree_digest(store.blobs_dir)
    with pytest.raises(VerificationError, match="is not what the proposal was checked against"):
        Weightgate(store).promote(pid, "olga")
    assert _ledger_rows(store) == rows and tree_digest(store.blobs_dir) == before


def test_redactions_side_file_changes_nothing(store, approved):
    """Empty the data and list every record in an unsigned redactions.json: neither a new check nor the
    promotion accepts it."""
    pid, _ = approved
    pdir = store.proposals_dir / pid
    from governance.proposals import ProposalStore

    hashes = [h for h in ProposalStore(store.proposals_dir, Weightgate(store).root()).load(pid)
              .manifest["data"]["record_macs"]]
    (pdir / "data.jsonl").write_text("")
    (pdir / "redactions.json").write_text(json.dumps(hashes))
    with pytest.raises(VerificationError, match="not the data its proposer signed"):
        check(store, pid)
    rows = _ledger_rows(store)
    with pytest.raises(VerificationError, match="not the data its proposer signed"):
        Weightgate(store).promote(pid, "olga")
    assert _ledger_rows(store) == rows


def test_approval_names_the_report_it_read(store, base_model, full_candidate, update_data):
    from governance.signing import sha256_hex

    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    first = sha256_hex(check(store, p.id).envelope.read_bytes())
    second = sha256_hex(check(store, p.id).envelope.read_bytes())  # a newer report lands meanwhile
    with pytest.raises(CheckFailed, match="read the newest report"):
        Weightgate(store).approve(p.id, "bob", report=first[:16])
    assert Weightgate(store).approve(p.id, "bob", report=second[:16]).met


def test_deleting_the_newest_report_revives_nothing(store, approved, tmp_path):
    """Check, approve, check again under a stricter policy (fails); deleting the newer report and its
    decisions does not bring the older, approved report back: the ledger recorded both."""
    import yaml

    from governance.history import recorded_reports
    from governance.ledger import Ledger

    pid, _ = approved
    policy = yaml.safe_load(store.policy_path.read_text())
    policy["allowed_update_kinds"] = ["lora"]  # the full update is no longer allowed
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(policy))
    assert check(store, pid, strict).report["verdict"] == "fail"
    reports = sorted((store.proposals_dir / pid / "reports").glob("*.dsse.json"))
    assert [n for n, _, _ in recorded_reports(Ledger.of(store).entries())[pid]] == [1, 2] and len(reports) == 2
    reports[-1].unlink()
    rows = _ledger_rows(store)
    with pytest.raises(VerificationError, match="reports/2.dsse.json: the report ledger entry .* recorded is missing"):
        Weightgate(store).promote(pid, "olga")
    assert _ledger_rows(store) == rows
    with pytest.raises(VerificationError, match="report 2 of .* is missing"):
        Weightgate(store).verify()
    # a report file nobody recorded (a forged one, or one whose check was killed) is never in force
    reports[-1].write_bytes(reports[0].read_bytes())
    with pytest.raises(VerificationError, match="not the report ledger entry .* recorded"):
        Weightgate(store).promote(pid, "olga")
