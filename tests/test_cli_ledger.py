"""The ledger commands as a user runs them, and concurrent writers serialized."""

import json
import sqlite3
import subprocess

import pytest

from tests.test_cli import wg
from update_pipeline import world

ENV = {"WEIGHTGATE_PASSPHRASE_PAT": "pat-passphrase", "WEIGHTGATE_PASSPHRASE_RUTH": "ruth-passphrase",
       "WEIGHTGATE_PASSPHRASE_SAM": "sam-passphrase", "WEIGHTGATE_PASSPHRASE_ADA": "ada-passphrase"}


@pytest.fixture(scope="module")
def _made(tmp_path_factory, base_model, full_candidate, update_data):
    """A store with a checked proposal, made once by the CLI; each test works on its own copy."""
    return _setup(tmp_path_factory.mktemp("cli-ledger"), base_model, full_candidate, update_data)


@pytest.fixture
def made(_made, tmp_path):
    from tests.conftest import copy_store

    copy_store(_made[0], tmp_path / "home")
    return tmp_path / "home", _made[1]


def _setup(tmp_path, base_model, full_candidate, update_data):
    home = tmp_path / "home"
    policy = world.policy(tmp_path / "world-policy.yaml")  # the default, the world's invented names allowed
    assert wg("init", "--policy", str(policy), home=home).returncode == 0
    for name, role in (("pat", "proposer"), ("ruth", "approver"), ("sam", "auditor"), ("ada", "root")):
        assert wg("keys", "create", name, "--role", role, home=home, env=ENV).returncode == 0
    r = wg("trust", "init", "--by", "ada", "--add", "pat:proposer", "--add", "ruth:approver", "--add", "sam:auditor",
           home=home, env=ENV)
    assert r.returncode == 0, r.stderr
    r = wg("propose", "--base", str(base_model), "--candidate", str(full_candidate), "--data", str(update_data),
           "--by", "pat", home=home, env=ENV)
    pid = r.stdout.split()[1]
    assert wg("check", pid, home=home).returncode == 0
    return home, pid


def test_approve_promote_show_verify_rollback_export(made, tmp_path):
    home, pid = made
    r = wg("promote", pid, "--by", "ruth", home=home, env=ENV)
    assert r.returncode == 1 and "approvals 0/1" in r.stderr
    r = wg("approve", pid, "--by", "sam", home=home, env=ENV)
    assert r.returncode == 1 and "role 'auditor'" in r.stderr
    r = wg("approve", pid, "--by", "ruth", "--comment", "looks fine", home=home, env=ENV)
    assert r.returncode == 0 and "approvals 1/1 (signed: ruth; missing: 0)" in r.stdout
    r = wg("promote", pid, "--by", "ruth", home=home, env=ENV)
    assert r.returncode == 0 and "ledger:1" in r.stdout
    rows = json.loads(wg("ledger", "show", "--json", home=home).stdout)
    assert [(e["action"], e["version"]) for e in rows] == [("root", None), ("policy", None), ("report", None),
                                                           ("genesis", 0), ("promote", 1)]
    assert rows[4]["approvers"] == ["ruth"] and rows[4]["signed_by"] == ["ruth"]
    assert wg("ledger", "verify", "--deep", home=home).returncode == 0
    r = wg("rollback", "--to", "0", home=home, env=ENV)
    assert r.returncode == 2 and "--by" in r.stderr
    r = wg("rollback", "--to", "0", "--by", "pat", home=home, env=ENV)
    assert r.returncode == 1 and "has role 'proposer'" in r.stderr
    r = wg("rollback", "--to", "0", "--by", "ruth", "--reason", "drill", home=home, env=ENV)
    assert r.returncode == 0 and "champion is ledger:0" in r.stdout
    out = tmp_path / "bundle"
    r = wg("audit", "export", "--out", str(out), home=home)
    assert r.returncode == 0
    fingerprint = json.loads((home / "config.json").read_text())["root_fingerprint"]
    assert fingerprint in r.stderr
    r = wg("audit", "verify", str(out))
    assert r.returncode == 1 and "--root-fingerprint" in r.stderr and "--trust" in r.stderr
    r = wg("audit", "verify", str(out), "--root-fingerprint", fingerprint)
    assert r.returncode == 0 and "6 ledger entries" in r.stdout, r.stderr

    with sqlite3.connect(home / "ledger.db") as db:
        env = db.execute("SELECT envelope FROM ledger_entries WHERE seq = 4").fetchone()[0]
        db.execute("UPDATE ledger_entries SET envelope = ? WHERE seq = 4", (env[:40] + b"X" + env[41:],))
    r = wg("ledger", "verify", home=home)
    assert r.returncode == 1 and "ledger entry 4" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_concurrent_writers_are_serialized(made):
    import os
    import sys

    home, pid = made
    wg("approve", pid, "--by", "ruth", home=home, env=ENV)
    assert wg("promote", pid, "--by", "ruth", home=home, env=ENV).returncode == 0
    env = {**os.environ, **ENV, "WEIGHTGATE_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-m", "update_pipeline.cli", "rollback", "--to", str(i % 2),
                               "--by", "ruth"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    ok = sum(code == 0 for code, _ in results)
    assert all(code == 0 or "already the champion" in err for code, err in results), results
    rows = json.loads(wg("ledger", "show", "--json", home=home).stdout)
    assert len(rows) == 5 + ok and [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert wg("ledger", "verify", home=home).returncode == 0
