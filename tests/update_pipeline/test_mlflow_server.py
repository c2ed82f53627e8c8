"""A real `mlflow server` on 127.0.0.1: a proposal and its check are logged through it."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from update_pipeline.check import check
from update_pipeline.intake import propose


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_proposal_logged_through_a_server(tmp_path, monkeypatch, base_model, full_candidate, update_data,
                                          mlflow_server):
    from mlflow import MlflowClient

    from governance.store import Store
    from tests.conftest import PASSPHRASES, trusted_store
    from update_pipeline import world
    from update_pipeline.service import Weightgate

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    store = Store.locate(tmp_path / "home")
    store.init(world.policy(tmp_path / "policy.yaml"))  # the default, the world's invented names allowed
    trusted_store(store)  # the root's checkpoint goes to the server's registry
    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase",
                tracking_uri=mlflow_server)
    report = check(store, p.id).report  # follows the proposal's own tracking URI
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(p.run_id)
    assert run.data.params["proposer"] == "alice"
    assert run.data.tags["weightgate.verdict"] == report["verdict"] == "pass"
    assert {a.path for a in client.list_artifacts(p.run_id)} == {"proposal", "reports"}
    assert run.inputs.dataset_inputs[0].dataset.digest
    assert not (store.home / "mlflow.db").exists()  # nothing went to the embedded store
    svc = Weightgate(store, tracking_uri=mlflow_server)
    svc.approve(p.id, "bob")
    svc.promote(p.id, "olga")
    assert svc.verify()["witnesses"] == ["MLflow (entry 5)"]
    assert client.get_model_version_by_alias(store.model_name, "champion").tags["weightgate.ledger_version"] == "1"
