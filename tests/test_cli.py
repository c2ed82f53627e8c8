"""The command line as users and scripts see it: help, exit codes, one-line errors, no heavy imports."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from update_pipeline import world

HEAVY = ("torch", "transformers", "mlflow", "presidio_analyzer", "streamlit", "great_expectations")


def wg(*args, home=None, env=None, check=False):
    e = {**os.environ, **(env or {})}
    if home:
        e["WEIGHTGATE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "update_pipeline.cli", *args], capture_output=True,
                          text=True, env=e, check=check, timeout=600)


def test_help_imports_nothing_heavy():
    code = ("import sys; sys.argv=['weightgate','--help']\nfrom update_pipeline.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("HEAVY="), out


@pytest.mark.parametrize("cmd", [[], ["init"], ["keys", "create"], ["keys", "list"], ["train"], ["propose"],
                                 ["check"], ["approve"], ["reject"], ["promote"], ["rollback"], ["revert"],
                                 ["forget"], ["ledger"], ["ledger", "show"], ["ledger", "verify"], ["audit"],
                                 ["audit", "export"], ["audit", "verify"], ["demo"], ["trust"], ["trust", "init"],
                                 ["trust", "show"], ["trust", "add-key"], ["trust", "revoke"], ["trust", "rotate"],
                                 ["trust", "thresholds"], ["policy", "apply"], ["policy", "show"],
                                 ["ledger", "checkpoint"], ["gc"], ["doctor"]])
def test_every_command_has_help(cmd):
    r = wg(*cmd, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_cli_flow_and_exit_codes(tmp_path, base_model, full_candidate, update_data):
    home = tmp_path / "home"
    env = {"WEIGHTGATE_PASSPHRASE": "a long enough passphrase"}
    policy = world.policy(tmp_path / "world-policy.yaml")  # the demo world's policy, its invented names allowed
    assert wg("init", "--policy", str(policy), home=home).returncode == 0
    assert wg("keys", "create", "pat", "--role", "proposer", home=home, env=env).returncode == 0
    assert wg("keys", "create", "admin", "--role", "root", home=home, env=env).returncode == 0
    listed = json.loads(wg("keys", "list", "--json", home=home).stdout)
    assert [(k["name"], k["trusted_role"]) for k in listed] == [("admin", None), ("pat", None)]
    r = wg("propose", "--base", str(base_model), "--candidate", str(full_candidate), "--data", str(update_data),
           "--by", "pat", home=home, env=env)
    assert r.returncode == 2 and "no trust root" in r.stderr
    r = wg("trust", "init", "--by", "admin", "--add", "pat:proposer", home=home, env=env)
    assert r.returncode == 0, r.stderr
    listed = json.loads(wg("keys", "list", "--json", home=home).stdout)
    assert [(k["name"], k["trusted_role"]) for k in listed] == [("admin", "root"), ("pat", "proposer"),
                                                                 ("weightgate-gate", "gate")]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    r = wg("propose", "--base", str(base_model), "--candidate", str(full_candidate), "--data", str(bad),
           "--by", "pat", home=home, env=env)
    assert r.returncode == 2 and "line 2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr

    r = wg("propose", "--base", str(base_model), "--candidate", str(full_candidate), "--data",
           str(update_data), "--by", "pat", home=home, env=env)
    assert r.returncode == 0, r.stderr
    pid = r.stdout.split()[1]
    junit, sarif = tmp_path / "r.xml", tmp_path / "r.sarif"
    r = wg("check", pid, "--json", "--junit", str(junit), "--sarif", str(sarif), home=home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "pass" and junit.is_file() and sarif.is_file()

    strict = Path(__file__).parents[1] / "policies" / "strict.yaml"
    r = wg("check", pid[:8], "--policy", str(strict), home=home)
    assert r.returncode == 1 and "fail" in r.stdout

    assert wg("check", "prop-nope", home=home).returncode == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: x\nallowed_update_kinds: [full]\napprovals: {required: 1}\n"
                      "gates: {made_up: {}}\n")
    r = wg("check", pid, "--policy", str(broken), home=home)
    assert r.returncode == 2 and "unknown gate 'made_up'" in r.stderr and str(broken) in r.stderr, r.stderr


def test_store_required(tmp_path):
    r = wg("keys", "create", "x", "--role", "proposer", home=tmp_path / "none",
           env={"WEIGHTGATE_PASSPHRASE": "a long enough passphrase"})
    r2 = wg("propose", "--base", "x", "--candidate", "y", "--data", "z", "--by", "x", home=tmp_path / "none")
    assert r.returncode == 2 and "weightgate init" in r.stderr
    assert r2.returncode == 2 and "weightgate init" in r2.stderr
