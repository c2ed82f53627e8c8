"""MLflow as its users read it: every registered version names its ledger version, its parent and its data;
the store's config names the tracking store used; nothing is written outside the store."""

import json
import os
import shutil

import pytest

from governance.errors import UsageError
from tests.conftest import trusted_store, write_jsonl
from update_pipeline import world
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate
from update_pipeline.train import train_update

RECIPE = "weightgate-recipe.json"


def through(store, base_ref, candidate, data):
    p = propose(store, base_ref, candidate, data, "alice", "alice-passphrase")
    assert check(store, p.id).report["verdict"] == "pass"
    Weightgate(store).approve(p.id, "bob", "ok")
    return p, Weightgate(store).promote(p.id, "bob").version


def test_registry_names_ledger_versions_lineage_and_data(tmp_path, monkeypatch, full_candidate):
    from governance.data import load_jsonl
    from governance.store import Store
    from tests.conftest import PASSPHRASES

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    here = tmp_path / "here"  # where the user runs every command from: it stays empty
    here.mkdir()
    monkeypatch.chdir(here)
    store = Store.locate(tmp_path / "home")
    store.init(world.policy(tmp_path / "policy.yaml"))
    trusted_store(store)
    config = json.loads((store.home / "config.json").read_text())
    assert config["tracking_uri"] == f"sqlite:///{store.home / 'mlflow.db'}" == store.tracking_uri()

    # the base was trained with weightgate elsewhere (it carries its recipe); a LoRA adapter trained on it
    # elsewhere has none of its own
    data = write_jsonl(tmp_path / "lora.jsonl", world.fact_records(world.countries(n=30)[27:], "curated"))
    outside = tmp_path / "outside-lora"
    train_update(full_candidate, "base", load_jsonl(data), outside, lora=True)
    (outside / RECIPE).unlink()
    proposal, version = through(store, str(full_candidate), outside, data)
    assert version == 1
    assert sorted(os.listdir(here)) == []  # no mlruns/, nothing else

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())
    default = client.get_experiment("0")  # MLflow's Default experiment keeps its artifacts in the store
    assert str(store.artifacts_dir) in default.artifact_location and str(here) not in default.artifact_location
    mvs = {int(mv.tags["weightgate.ledger_version"]): mv
           for mv in client.search_model_versions(f"name = '{store.model_name}'")}
    assert sorted(mvs) == [0, 1]
    runs = {v: client.get_run(mv.run_id) for v, mv in mvs.items()}
    for v, mv in mvs.items():  # the ledger version in every name and link a user sees
        assert client.get_model_version_by_alias(store.model_name, f"ledger-{v}").version == mv.version
        assert mv.description.startswith(f"ledger:{v}, ") and f"@ledger-{v}" in mv.description
    assert runs[0].info.run_name == "ledger:0 genesis" and runs[1].info.run_name == f"ledger:1 promote {proposal.id}"
    # parent lineage: the parent's ledger version, registered version and run
    assert mvs[1].tags["weightgate.parent_ledger_version"] == runs[1].data.tags["weightgate.parent_ledger_version"] \
        == "0"
    assert mvs[1].tags["weightgate.parent_model_version"] == str(mvs[0].version)
    assert runs[1].data.tags["weightgate.parent_run"] == mvs[0].run_id
    assert f"parent ledger:0 (registered version {mvs[0].version})" in mvs[1].description
    assert "weightgate.parent_ledger_version" not in mvs[0].tags and not runs[0].inputs.dataset_inputs

    # the update's data as the run's training dataset: named and digested, none of its records
    from governance.ledger import Ledger, versions

    entries = versions(Ledger.of(store).entries())
    texts = [v for r in load_jsonl(data) for v in r.fields.values() if len(v) > 12]
    (given,) = runs[1].inputs.dataset_inputs
    merkle = entries[1].predicate["data"]["merkle_root"]
    assert given.dataset.name == f"{proposal.id}-data" and given.dataset.digest == merkle[:32]
    assert {t.key: t.value for t in given.tags}["weightgate.merkle_root"] == merkle
    assert {t.key: t.value for t in given.tags}["mlflow.data.context"] == "training"
    held = json.dumps([given.dataset.source, given.dataset.profile, given.dataset.schema])
    assert texts and not any(t in held for t in texts)
    raw = (store.home / "mlflow.db").read_bytes()  # a forget has nothing to delete from MLflow's database
    assert not any(t.encode() in raw for t in texts)

    # the outside LoRA's MLflow model carries no recipe (its base's was copied into its folder); the base its own
    def served(v):
        return {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(mvs[v].run_id, "model/model")}

    assert RECIPE in served(0) and RECIPE not in served(1) and "config.json" in served(1)
    assert RECIPE in entries[1].predicate["weights"]["files"] and entries[1].predicate["recipe"] is None
    assert verify_store(store)["champion"] == 1  # what @champion serves is checked against the ledger

    # ledger show: MLflow's registered version beside each ledger version
    from typer.testing import CliRunner

    from update_pipeline.cli import app

    r = CliRunner().invoke(app, ["--home", str(store.home), "ledger", "show", "--json"])
    assert r.exit_code == 0, r.output
    shown = {(x["action"], x["version"], x["mlflow_version"]) for x in json.loads(r.stdout)}
    assert {("genesis", 0, mvs[0].version), ("promote", 1, mvs[1].version)} <= shown
    assert all(m is None for a, _, m in shown if a not in ("genesis", "promote"))
    r = CliRunner().invoke(app, ["--home", str(store.home), "ledger", "show"], env={"COLUMNS": "240"})
    assert r.exit_code == 0 and "mlflow version" in r.stdout

    # another tracking store named against this one is refused, and nothing is written there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with pytest.raises(UsageError, match="config.json"):
        Weightgate(store).rollback(0, "bob")
    assert not (tmp_path / "elsewhere.db").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{os.path.relpath(store.home / 'mlflow.db')}")
    Weightgate(store).rollback(0, "bob")  # the same database, however it is written
    assert client.get_model_version_by_alias(store.model_name, "champion").version == mvs[0].version
    assert sorted(os.listdir(here)) == []

    # a copy of the store uses its own database
    shutil.copytree(store.home, tmp_path / "copy")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert Store.locate(tmp_path / "copy").tracking_uri() == f"sqlite:///{tmp_path / 'copy' / 'mlflow.db'}"
