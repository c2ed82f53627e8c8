"""A real `mlflow server` on 127.0.0.1 (PostgreSQL behind it): a proposal and its check are logged through it."""

import pytest

from update_pipeline.check import check
from update_pipeline.intake import propose


@pytest.mark.slow
@pytest.mark.servers
def test_proposal_logged_through_a_server(tmp_path, monkeypatch, base_model, full_candidate, update_data,
                                          mlflow_team):
    from mlflow import MlflowClient

    from governance.store import Store
    from tests.conftest import PASSPHRASES, trusted_store
    from update_pipeline import world
    from update_pipeline.service import Weightgate

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_team)
    store = Store.locate(tmp_path / "home")
    store.init(world.policy(tmp_path / "policy.yaml"))  # the default, the world's invented names allowed
    trusted_store(store)  # the root's checkpoint goes to the server's registry
    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase",
                tracking_uri=mlflow_team)
    report = check(store, p.id).report  # follows the proposal's own tracking URI
    client = MlflowClient(tracking_uri=mlflow_team)
    run = client.get_run(p.run_id)
    assert run.data.params["proposer"] == "alice"
    assert run.data.tags["weightgate.verdict"] == report["verdict"] == "pass"
    assert {a.path for a in client.list_artifacts(p.run_id)} == {"proposal", "reports"}
    assert run.inputs.dataset_inputs[0].dataset.digest
    assert not (store.home / "mlflow.db").exists()  # nothing went to the embedded store
    svc = Weightgate(store, tracking_uri=mlflow_team)
    svc.approve(p.id, "bob")
    svc.promote(p.id, "olga")
    assert svc.verify()["witnesses"] == ["MLflow (entry 5)"]
    assert client.get_model_version_by_alias(store.model_name, "champion").tags["weightgate.ledger_version"] == "1"
