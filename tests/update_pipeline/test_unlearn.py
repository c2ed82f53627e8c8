"""Revert one update exactly or approximately; forget one record and show its plaintext is gone."""

import hashlib

import pytest

from governance.data import load_jsonl
from governance.errors import VerificationError
from governance.ledger import Ledger
from governance.proposals import ProposalStore
from tests.update_pipeline.test_ledger_flow import promote_chain
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.service import Weightgate
from update_pipeline.train import train_update


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(store, pid):
    return ProposalStore(store.proposals_dir, Weightgate(store).root()).load(pid).manifest


def _through(store, pid):
    report = check(store, pid).report
    failed = [(g["name"], g["findings"][:2]) for g in report["gates"] if g["status"] != "pass"]
    assert report["verdict"] == "pass", failed
    Weightgate(store).approve(pid, "bob", "")
    return Weightgate(store).promote(pid, "bob").version


def test_exact_revert_equals_training_without_it(store, base_model, tmp_path):
    promote_chain(store, base_model, tmp_path, n=3)
    done = Weightgate(store).revert(2, True, by="olga", proposer="alice")
    assert done.method == "exact" and done.replayed == [3]
    m = _manifest(store, done.proposal.id)
    entry = len(Ledger.of(store).entries())  # the signed revert request the origin names
    assert m["origin"] == {"revert": 2, "method": "exact", "start": 1, "replayed": [3], "entry": entry}
    assert Ledger.of(store).entries()[-1].predicate["action"] == "revert"

    # train the first and third updates alone, as a user would have without the second
    first, third = tmp_path / "alone1", tmp_path / "alone3"
    train_update(base_model, "base", load_jsonl(tmp_path / "u0.jsonl"), first, epochs=1, seed=0)
    train_update(first, "first", load_jsonl(tmp_path / "u2.jsonl"), third, epochs=1, seed=2)
    assert m["candidate"]["files"]["model.safetensors"] == sha(third / "model.safetensors")
    assert _through(store, done.proposal.id) == 4
    proposals = ProposalStore.of(store, Ledger.of(store).entries())
    _, report = proposals.latest_report(proposals.load(done.proposal.id))
    retention = next(g for g in report["gates"] if g["name"] == "regression")["evidence"]["retention"]
    assert retention["judged"] is False and "ledger:2" in retention["columns"]  # reported, not judged
    verify_store(store)


def test_approximate_revert_is_labelled(store, base_model, tmp_path):
    from mlflow import MlflowClient

    promote_chain(store, base_model, tmp_path, n=2)
    done = Weightgate(store).revert(1, False, by="olga", proposer="alice")
    m = _manifest(store, done.proposal.id)
    assert m["origin"]["approximate"] is True and m["note"].startswith("APPROXIMATE")
    assert m["data"]["records"] == 0
    version = _through(store, done.proposal.id)
    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())
    mv = client.get_model_version_by_alias(store.model_name, "champion")
    assert mv.tags["weightgate.ledger_version"] == str(version) and mv.tags["weightgate.approximate"] == "true"
    # exact replay across an approximate version is refused, not faked
    with pytest.raises(Exception, match="no training recipe|itself a replay"):
        Weightgate(store).revert(2, True, by="olga", proposer="alice")


def test_forget_a_record(store, base_model, tmp_path):
    promote_chain(store, base_model, tmp_path, n=3)
    victim = load_jsonl(tmp_path / "u1.jsonl")[0]
    secret = victim.fields["text"]
    assert secret.startswith("The capital of")
    done = Weightgate(store).forget(None, secret, by="olga", proposer="alice")
    assert done.affected == [2] and done.replayed == [2, 3] and len(done.removed) == 1
    # signed metadata holds keyed hashes only: neither the record's plain hash nor its id is anywhere, and
    # its key is gone, so a guess of the record cannot be confirmed against the signed keyed hash
    for clue in (victim.record_hash, victim.id):
        assert [p for p in store.home.rglob("*") if p.is_file() and clue.encode() in p.read_bytes()] == []

    leaks = [p for p in store.home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []
    # ledger:2 and ledger:3 were trained on the record: tombstoned, the champion is back on ledger:1
    assert done.tombstoned == [2, 3]
    summary = verify_store(store, deep=True)
    assert summary["champion"] == 1
    for v in (2, 3):
        with pytest.raises(Exception, match="tombstoned"):
            Weightgate(store).rollback(v, ["bob"])

    kept = [r for r in load_jsonl(tmp_path / "u1.jsonl") if r.record_hash != victim.record_hash]
    a, b, c = tmp_path / "f1", tmp_path / "f2", tmp_path / "f3"
    train_update(base_model, "base", load_jsonl(tmp_path / "u0.jsonl"), a, epochs=1, seed=0)
    train_update(a, "a", kept, b, epochs=1, seed=1)
    train_update(b, "b", load_jsonl(tmp_path / "u2.jsonl"), c, epochs=1, seed=2)
    m = _manifest(store, done.proposal.id)
    assert m["base"]["ref"] == "ledger:1"
    assert m["candidate"]["files"]["model.safetensors"] == sha(c / "model.safetensors")
    assert m["data"]["records"] == len(kept) + len(load_jsonl(tmp_path / "u2.jsonl"))  # replayed, without it
    # the promoted proposal's own copy was redacted and still verifies against its signature, for reading;
    # it can never be checked or promoted again in that state
    entries = Ledger.of(store).entries()
    redacted = next(e.predicate["proposal"]["id"] for e in entries if e.predicate.get("version") == 2
                    and e.predicate["action"] == "promote")
    forgotten = set(entries[-2].predicate["removed"])
    proposals = ProposalStore(store.proposals_dir, Weightgate(store).root(), forgotten)
    proposals.load(redacted, redacted_ok=True)
    with pytest.raises(VerificationError, match="not the data its proposer signed"):
        proposals.load(redacted)
    with pytest.raises(Exception, match="no promoted update"):
        Weightgate(store).forget(None, secret, by="olga", proposer="alice")
    assert _through(store, done.proposal.id) == 4
    verify_store(store, deep=True)


def test_cli_prints_the_plan_before_acting(store, base_model, tmp_path):
    import subprocess
    import sys

    promote_chain(store, base_model, tmp_path, n=2)
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(store.home), "revert", "1",
                        "--exact", "--by", "olga", "--proposer", "alice"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "plan: replay the recorded recipes of [2] from ledger:0 (exact" in r.stderr
    assert "new proposal prop-" in r.stdout
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(store.home), "forget",
                        "--text", "no such text", "--by", "olga"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no promoted update's data contains that record" in r.stderr


def test_origin_must_name_a_signed_request(store, base_model, full_candidate, tmp_path):
    """A proposer who writes 'origin: revert' into their own manifest (to get empty data accepted and the
    history scans skipped) is refused by check: no signed revert entry asked for it."""
    from governance.errors import VerificationError
    from update_pipeline.intake import propose

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for origin in ({"revert": 1, "method": "approximate", "approximate": True},
                   {"revert": 1, "method": "approximate", "approximate": True, "entry": 1}):
        p = propose(store, str(base_model), full_candidate, empty, "alice", "alice-passphrase", origin=origin)
        with pytest.raises(VerificationError, match="names no signed revert ledger entry"):
            check(store, p.id)
