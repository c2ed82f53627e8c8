"""Forget as a data-subject request: every copy goes, every version trained on the record is tombstoned,
nothing is written until the keys unlock and the plan holds."""

import base64
import shutil

import pytest

from governance.data import load_jsonl
from governance.errors import WeightgateError
from governance.ledger import Ledger, versions
from tests.conftest import PASSPHRASES, write_jsonl
from tests.update_pipeline.test_ledger_flow import promote_chain
from update_pipeline import world
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate
from update_pipeline.train import train_update


def leaks(home, text):
    """Every file under the store holding the text, its lower case or its base64."""
    forms = [text.encode(), text.lower().encode(), base64.b64encode(text.encode())]
    return [p for p in home.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]


def snapshot(home):
    return {p.relative_to(home): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def test_wrong_passphrase_or_impossible_replay_changes_nothing(store, base_model, tmp_path):
    promote_chain(store, base_model, tmp_path, n=2)
    secret = load_jsonl(tmp_path / "u0.jsonl")[0].fields["text"]
    before = snapshot(store.home)
    svc = Weightgate(store, passphrase=lambda name: "wrong passphrase!" if name == "alice" else PASSPHRASES[name])
    with pytest.raises(WeightgateError, match="passphrase"):
        svc.forget(None, secret, by="olga", proposer="alice")
    assert snapshot(store.home) == before
    # an approximate revert leaves a version without a recipe: an exact replay across it is impossible
    done = Weightgate(store).revert(2, False, by="olga", proposer="alice")
    from tests.update_pipeline.test_unlearn import _through

    assert _through(store, done.proposal.id) == 3
    before = snapshot(store.home)
    with pytest.raises(WeightgateError, match="no exact replay is possible.*nothing was changed"):
        Weightgate(store).forget(None, secret, by="olga", proposer="alice")
    assert snapshot(store.home) == before
    # --no-replay tombstones instead: the champion goes back to the base, nothing is proposed
    done = Weightgate(store).forget(None, secret, by="olga", proposer="alice", replay=False)
    assert done.proposal is None and done.tombstoned == [1, 2, 3]
    assert verify_store(store, deep=True)["champion"] == 0
    assert leaks(store.home, secret) == []


def test_every_copy_goes_and_trained_versions_are_tombstoned(store, base_model, tmp_path):
    from mlflow import MlflowClient

    promote_chain(store, base_model, tmp_path, n=2)
    victim = load_jsonl(tmp_path / "u0.jsonl")[0]
    secret = "Ada Quartermaine, 12 Lantern Row"
    # the same person in another update nobody promoted yet, in its meta and its id
    other = world.fact_records(world.countries(n=40)[36:], "curated")
    other[0]["meta"] = {"note": f"called by {secret}"}
    other[1]["id"] = f"{secret} / 2"
    data = write_jsonl(tmp_path / "other.jsonl", other)
    out = tmp_path / "other"
    train_update(base_model, "base", load_jsonl(data), out, epochs=1)
    pending = propose(store, str(base_model), out, data, "alice", "alice-passphrase").id
    check(store, pending)  # its report, logged to MLflow too, quotes what the gates flagged
    # and in the promoted update the victim's record: forget it by its id (derived from its content)
    assert victim.id.startswith("r-")
    # leftovers: a killed replay's temporary folder and a cached copy of the data
    (store.cache_dir / "tmpkilled").mkdir(parents=True)
    shutil.copy(data, store.cache_dir / "tmpkilled" / "data-v1.jsonl")
    (store.cache_dir / "demo").mkdir()
    shutil.copy(tmp_path / "u0.jsonl", store.cache_dir / "demo" / "clean.jsonl")

    done = Weightgate(store).forget(None, secret, by="olga", proposer="alice")
    assert pending not in {p.name for p in store.proposals_dir.iterdir()}
    kept = next(iter(load_jsonl(tmp_path / "u1.jsonl")[0].fields.values()))
    assert leaks(store.home, secret) == [] and leaks(store.home, kept) != []  # other people's records stay
    assert done.proposal is None and done.tombstoned == []  # not in any promoted update: nothing to replay

    done = Weightgate(store).forget(victim.id, None, by="olga", proposer="alice")
    assert done.tombstoned == [1, 2] and done.replayed == [1, 2]
    assert all(leaks(store.home, t) == [] for t in victim.fields.values())
    assert [r.id for r in load_jsonl(store.cache_dir / "demo" / "clean.jsonl")] == [
        r.id for r in load_jsonl(tmp_path / "u0.jsonl")[1:]]
    entries = Ledger.of(store).entries()
    assert [e.predicate["action"] for e in entries[-2:]] == ["forget", "forget_done"]
    assert entries[-1].predicate["shredded_keys"] == 1 and entries[-1].predicate["deleted_blobs"] > 0
    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())
    for mv in client.search_model_versions(f"name = '{store.model_name}'"):
        v = int(mv.tags["weightgate.ledger_version"])
        files = client.list_artifacts(mv.run_id, "model")
        assert (files == []) == (v in (1, 2)), v
        assert ("weightgate.tombstoned" in mv.tags) == (v in (1, 2))
    assert client.get_model_version_by_alias(store.model_name, "champion").tags["weightgate.ledger_version"] == "0"
    for v in (1, 2):
        with pytest.raises(WeightgateError, match="tombstoned"):
            Weightgate(store).rollback(v, ["bob"])
        with pytest.raises(WeightgateError, match="tombstoned"):
            propose(store, f"ledger:{v}", out, data, "alice", "alice-passphrase")
    assert sorted(versions(entries)) == [0, 1, 2]  # the ledger keeps the entries and says why
    assert verify_store(store, deep=True)["champion"] == 0


def test_the_world_base_keeps_no_training_text(base_model):
    """The demo's base folder is a model, nothing else: its training corpus is not stored as a blob or an
    MLflow artifact, where a forget could never reach it."""
    assert sorted(p.name for p in base_model.iterdir() if p.suffix in (".jsonl", ".txt", ".csv")) == []


def test_a_kill_after_removing_a_checked_proposal_still_verifies(store, base_model, tmp_path, monkeypatch):
    """The proposals a forget removes are named in its signed intent: a kill after their folders are gone (and a
    report entry names them) leaves a ledger that verifies, and the resumed forget completes; a broken
    record_keys.json in an unrelated proposal changes nothing."""
    from update_pipeline import shred

    _, outs = promote_chain(store, base_model, tmp_path, n=1)
    secret = next(iter(load_jsonl(tmp_path / "u0.jsonl")[0].fields.values()))
    again = propose(store, "ledger:champion", outs[0], tmp_path / "u0.jsonl", "alice", "alice-passphrase").id
    check(store, again)
    shutil.copytree(store.proposals_dir / again, tmp_path / "backup")  # an insider keeps a copy
    other = tmp_path / "other.jsonl"
    write_jsonl(other, world.fact_records(world.countries(n=40)[38:], "curated"))
    unrelated = propose(store, "ledger:champion", outs[0], other, "alice", "alice-passphrase").id
    (store.proposals_dir / unrelated / "record_keys.json").write_text('{"file": 5, "records": 7}')

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("kill")

    original = shred._cache
    monkeypatch.setattr(shred, "_cache", killed)
    with pytest.raises(KeyboardInterrupt):
        Weightgate(store).forget(None, secret, by="olga", proposer="alice")
    assert not (store.proposals_dir / again).exists()
    verify_store(store)  # the intent names the removed proposal: its report entry is not missing
    monkeypatch.setattr(shred, "_cache", original)
    Weightgate(store).forget(None, None, by="olga", proposer="alice")
    entries = Ledger.of(store).entries()
    assert entries[-1].predicate["action"] == "forget_done" and again in entries[-1].predicate["removed_proposals"]
    assert verify_store(store, deep=True)["champion"] == 0 and leaks(store.home, secret) == []
    # the other proposal stood on ledger:1, now tombstoned: removed too, its broken keys crashed nothing
    assert unrelated in entries[-1].predicate["removed_proposals"]
    shutil.copytree(tmp_path / "backup", store.proposals_dir / again)  # put back: it can never be promoted
    with pytest.raises(WeightgateError, match="was removed by a forget"):
        Weightgate(store).promote(again, "bob")


def test_an_interrupted_redaction_keeps_data_and_keys_a_pair(tmp_path):
    from governance.proposals import record_keys_of

    pdir = tmp_path / "prop-0000000000"
    pdir.mkdir()
    old = {"file": "a" * 64, "records": ["b" * 64, "c" * 64]}
    (pdir / "record_keys.json").write_text(__import__("json").dumps(old))
    (pdir / "data.jsonl").write_text("old\n")
    (pdir / ".record_keys.json.new").write_text('{"file": null, "records": ["' + "c" * 64 + '"]}')
    (pdir / ".data.jsonl.new").write_text("new\n")
    assert record_keys_of(pdir) == old and (pdir / "data.jsonl").read_text() == "old\n"  # no marker: old pair
    assert not (pdir / ".data.jsonl.new").exists()
    (pdir / ".record_keys.json.new").write_text('{"file": null, "records": ["' + "c" * 64 + '"]}')
    (pdir / ".data.jsonl.new").write_text("new\n")
    (pdir / ".redact.ready").touch()
    assert record_keys_of(pdir)["records"] == ["c" * 64] and (pdir / "data.jsonl").read_text() == "new\n"
