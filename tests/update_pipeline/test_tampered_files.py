"""Files of the store edited into shapes nobody writes: one line, exit 1 or 2, never an internal error."""

import sqlite3

import pytest

from tests.test_cli import wg


@pytest.fixture
def home(store):
    return store.home


def _no_internal_error(r):
    assert r.returncode in (1, 2), (r.returncode, r.stderr)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the error, and at most one note


@pytest.mark.parametrize("value", ["text, not bytes", 10**15, b"[" * 3000 + b"]" * 3000,
                                   b'{"payload": ' + b"9" * 5000 + b"}"])
def test_ledger_row_of_the_wrong_shape(home, value):
    with sqlite3.connect(home / "ledger.db") as db:
        db.execute("UPDATE ledger_entries SET envelope = ? WHERE seq = 2", (value,))
    r = wg("ledger", "verify", home=home)
    _no_internal_error(r)
    assert r.returncode == 1 and "ledger entry 2" in r.stderr


def test_ledger_database_that_is_not_a_database(home):
    (home / "ledger.db").write_bytes(b"not sqlite at all" * 100)
    r = wg("ledger", "verify", home=home)
    _no_internal_error(r)
    assert "ledger database" in r.stderr


@pytest.mark.parametrize("text", ["{not json", "[1]"])
def test_malformed_config(home, text):
    (home / "config.json").write_text(text)
    r = wg("ledger", "verify", home=home)
    _no_internal_error(r)
    assert r.returncode == 2 and "config.json" in r.stderr


def test_stray_file_in_a_proposal(store, base_model, full_candidate, update_data):
    from update_pipeline.check import check
    from update_pipeline.intake import propose

    home = store.home
    pid = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase").id
    assert check(store, pid).report["verdict"] == "pass"
    (home / "proposals" / pid / "reports" / "x.dsse.json").write_text("{}")
    r = wg("approve", pid, "--by", "bob", home=home, env={"WEIGHTGATE_PASSPHRASE_BOB": "bob-passphrase"})
    _no_internal_error(r)
    assert r.returncode == 1 and "unexpected name" in r.stderr


def test_checkpoint_tag_nested_too_deeply(home):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_tag(
        "weightgate-model", "weightgate.checkpoint", "[" * 1500 + "]" * 1500)
    r = wg("ledger", "verify", home=home)
    _no_internal_error(r)
    assert r.returncode == 1 and "MLflow" in r.stderr
