"""The example CI jobs (examples/ci/) run here: their shell steps in order, in a repository whose last commit adds
an update, against a demo store that stands for the team's (SQLite URLs where a team names its servers, keys
written from what stands for the CI's secrets). Install steps are the only ones skipped."""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.conftest import PASSPHRASES, write_jsonl
from tests.test_sarif import assert_valid_sarif
from update_pipeline.service import Weightgate

EXAMPLES = Path(__file__).parents[1] / "examples" / "ci"
PII = {"text": "Write to Maria Keller at maria.keller@example.org about the order."}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def _repo(root: Path, name: str, records: list[dict], candidate: Path) -> tuple[Path, str]:
    """A repository whose last commit adds updates/NAME/ (data and candidate); returns it and its base commit."""
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "README.md").write_text("models\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    update = repo / "updates" / name
    update.mkdir(parents=True)
    write_jsonl(update / "data.jsonl", records)
    shutil.copytree(candidate, update / "candidate")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", f"update {name}")
    return repo, base


@pytest.fixture
def team(store, tmp_path):
    """The demo store as a CI job reaches it: its SQLite ledger and tracking URLs named as a team names its
    servers, its trust root's fingerprint, and the proposer's and the gate runner's keys only in 'secrets'. Its
    policy leaves out the gates that run the models (tests/test_sarif.py covers where their findings point)."""
    home = store.home
    policy = yaml.safe_load(store.policy_path.read_text())  # the gates that judge the data only: a quick check
    del policy["gates"]["regression"]
    policy["gates"]["pii"]["memorization_probe"] = policy["gates"]["poisoning"]["behaviour_scan"] = False
    store.policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
    urls = {"ledger_url": f"sqlite:///{home / 'ledger.db'}", "tracking_uri": f"sqlite:///{home / 'mlflow.db'}"}
    store.write_config({**store.config(), **urls})
    secrets = {"proposer_key": store.keys_dir / "alice.key", "proposer_record": store.keys_dir / "alice.json",
               "gate_key": store.keys_dir / "weightgate-gate.key"}
    kept = tmp_path / "secrets"
    kept.mkdir()
    for name, path in secrets.items():
        secrets[name] = kept / name
        shutil.copyfile(path, kept / name)
    for private in ("alice.key", "weightgate-gate.key"):
        (store.keys_dir / private).unlink()  # the job signs with the keys its secrets hold, or not at all
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEIGHTGATE_", "MLFLOW_TRACKING", "GITHUB_",
                                                                      "CI_", "PG"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {"home": home, "env": env, "secrets": secrets, **urls, "keys": tmp_path / "keys",
            "fingerprint": Weightgate(store).root().fingerprint, "model_name": store.model_name,
            "gate_passphrase": os.environ["WEIGHTGATE_GATE_PASSPHRASE"]}


def _filled(block: dict, values: dict) -> dict[str, str]:
    """An env block with every ${{ }} expression replaced by the value standing for it here."""
    missing = sorted(k for k, v in block.items() if "${{" in str(v) and k not in values)
    assert not missing, f"no stand-in for {missing}"
    return {k: str(values[k] if "${{" in str(v) else v) for k, v in block.items()}


def _documented(path: Path, names: set[str]) -> None:
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert not sorted(n for n in names if n not in header), f"{path.name}: undocumented {names}"


def test_github_workflow_passes_a_clean_update(team, tmp_path, base_model, full_candidate, update_records):
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    assert workflow[True]["pull_request"]["paths"] == ["updates/**"]  # YAML 1.1 reads the key `on` as true
    assert workflow["defaults"]["run"]["shell"] == "bash"
    text = (EXAMPLES / "github-actions.yml").read_text()
    _documented(EXAMPLES / "github-actions.yml", set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", text)))
    repo, base = _repo(tmp_path, "clean", update_records, full_candidate)
    job = workflow["jobs"]["check"]
    values = {"WEIGHTGATE_HOME": team["home"], "WEIGHTGATE_KEYS_DIR": team["keys"],
              "WEIGHTGATE_GATE_KEY_FILE": team["keys"] / "weightgate-gate.key",
              "WEIGHTGATE_LEDGER_URL": team["ledger_url"], "MLFLOW_TRACKING_URI": team["tracking_uri"],
              "WEIGHTGATE_MODEL_NAME": team["model_name"], "WEIGHTGATE_ROOT_FINGERPRINT": team["fingerprint"],
              "WEIGHTGATE_PROPOSER": "alice", "WEIGHTGATE_BASE": base_model, "PGPASSWORD": "",
              "WEIGHTGATE_PASSPHRASE": PASSPHRASES["alice"], "WEIGHTGATE_GATE_PASSPHRASE": team["gate_passphrase"],
              "BASE_SHA": base, "PR_NUMBER": "7", **{k.upper(): p.read_text() for k, p in team["secrets"].items()}}
    runner = {"GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "team/models",
              "GITHUB_ENV": str(tmp_path / "github_env")}
    Path(runner["GITHUB_ENV"]).touch()
    ran = []
    for step in job["steps"]:
        if "uses" in step:
            continue
        assert "${{" not in step["run"] and "if" not in step, step["name"]  # a failed step ends the job
        if step.get("id") == "install":
            continue
        exported = dict(line.split("=", 1) for line in Path(runner["GITHUB_ENV"]).read_text().splitlines())
        env = {**team["env"], **_filled(job["env"], values), **runner, **exported,
               **_filled(step.get("env", {}), values)}
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                           env=env, capture_output=True, text=True, timeout=600)
        ran.append(step["name"])
        assert p.returncode == 0, (step["name"], p.stdout, p.stderr)
    assert ran == ["Keys and home", "Propose the update", "Check (fails the job on exit 1)"]
    assert p.stdout.rstrip().endswith("verdict: pass"), p.stdout
    sarif = json.loads((repo / "weightgate-reports" / "weightgate.sarif").read_text())
    assert_valid_sarif(sarif)
    assert sarif["runs"][0]["properties"]["verdict"] == "pass"
    assert ET.parse(repo / "weightgate-reports" / "weightgate.xml").getroot().find("testsuite").get("failures") == "0"
    uploads = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    for action in ("github/codeql-action/upload-sarif", "actions/upload-artifact"):
        assert "!cancelled()" in uploads[action]["if"]  # uploaded when the check fails too
    assert uploads["github/codeql-action/upload-sarif"]["with"]["sarif_file"] == "weightgate-reports/weightgate.sarif"
    assert uploads["actions/upload-artifact"]["with"]["path"] == "weightgate-reports/"


def test_gitlab_job_fails_on_personal_data_and_keeps_its_reports(team, tmp_path, base_model, full_candidate,
                                                                 update_records):
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["weightgate"]
    script = "\n".join(job["script"])
    assigned = set(re.findall(r"^\s*([a-z_]+)=", script, re.M))
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", script)) - assigned - set(job["variables"])
    _documented(EXAMPLES / "gitlab-ci.yml", {n for n in used if not n.startswith("CI_")})
    records = [*update_records, PII]
    repo, base = _repo(tmp_path, "pii", records, full_candidate)
    variables = _filled(job["variables"], {}) | {"WEIGHTGATE_HOME": str(team["home"]),
                                                 "WEIGHTGATE_KEYS_DIR": str(team["keys"]),
                                                 "WEIGHTGATE_BASE": str(base_model)}  # a project variable's value
    project = {"WEIGHTGATE_LEDGER_URL": team["ledger_url"], "MLFLOW_TRACKING_URI": team["tracking_uri"],
               "WEIGHTGATE_MODEL_NAME": team["model_name"], "WEIGHTGATE_ROOT_FINGERPRINT": team["fingerprint"],
               "WEIGHTGATE_PROPOSER": "alice", "PGPASSWORD": "", "WEIGHTGATE_PASSPHRASE": PASSPHRASES["alice"],
               "WEIGHTGATE_GATE_PASSPHRASE": team["gate_passphrase"],
               "WEIGHTGATE_PROPOSER_KEY": str(team["secrets"]["proposer_key"]),  # File variables: paths
               "WEIGHTGATE_PROPOSER_RECORD": str(team["secrets"]["proposer_record"]),
               "WEIGHTGATE_GATE_KEY_FILE": str(team["secrets"]["gate_key"])}
    predefined = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
                  "CI_MERGE_REQUEST_PROJECT_URL": "https://gitlab.example/team/models", "CI_MERGE_REQUEST_IID": "7"}
    assert not (used - set(project) - set(predefined)), used
    p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=repo,
                       env={**team["env"], **variables, **project, **predefined}, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 1, (p.stdout, p.stderr)  # the check's exit 1 fails the job
    assert p.stdout.rstrip().endswith("verdict: fail") and "  pii: EMAIL_ADDRESS in 'text'" in p.stdout, p.stdout
    reports = repo / "weightgate-reports"
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["paths"] == ["weightgate-reports/"]
    junit = ET.parse(repo / job["artifacts"]["reports"]["junit"]).getroot()
    assert junit.find("testsuite/testcase[@name='pii']/failure") is not None
    sarif = json.loads((reports / "weightgate.sarif").read_text())
    assert_valid_sarif(sarif)
    pii = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "pii"]
    line = len(records)  # the record with personal data is the file's last line
    assert pii and {r["level"] for r in pii} == {"error"}
    assert {(json.dumps(r["locations"][0]["physicalLocation"]["artifactLocation"], sort_keys=True),
             r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in pii} == {
        (json.dumps({"uri": "updates/pii/data.jsonl", "uriBaseId": "%SRCROOT%"}, sort_keys=True), line)}
