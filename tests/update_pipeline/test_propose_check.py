"""The spine end to end: propose each kind of candidate, check it, read it back from MLflow."""

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch
from safetensors.torch import load_file, save_file

from audits.base import Gate
from governance.errors import VerificationError
from governance.keys import GATE_ROLE
from governance.proposals import ProposalStore
from governance.signing import verify_envelope
from tests.conftest import write_jsonl
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.report_formats import junit_xml, sarif, sources
from update_pipeline.service import Weightgate


def test_full_candidate_manifest_and_mlflow(store, base_model, full_candidate, update_data):
    from mlflow import MlflowClient

    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase", note="facts")
    prop = ProposalStore(store.proposals_dir, Weightgate(store).root()).load(p.id)
    m = prop.manifest
    assert m["candidate"]["kind"] == "full" and prop.proposer == "alice"
    assert set(m["candidate"]["files"]) == {"model.safetensors"}
    assert "config.json" in m["candidate"]["config_files"] and "tokenizer.json" in m["base"]["config_files"]
    assert m["data"]["records"] == len(m["data"]["record_macs"]) == 12
    assert m["delta"]["changed_tensors"] > 0 and m["delta"]["total_l2"] > 0
    some = m["delta"]["tensors"]["transformer.h.0.attn.c_attn.weight"]
    assert some["l2"] > 0 and 0 < some["top1pct_row_share"] <= 1

    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())
    run = client.get_run(p.run_id)
    assert run.data.params["candidate_kind"] == "full"
    assert run.data.params["data_merkle_root"] == m["data"]["merkle_root"]
    assert run.data.params["manifest_digest"] == p.manifest_digest
    assert run.data.params["proposer"] == "alice"
    assert run.data.metrics["delta.total_l2"] == pytest.approx(m["delta"]["total_l2"])
    ds = run.inputs.dataset_inputs[0]
    assert ds.dataset.digest == m["data"]["merkle_root"][:32]
    assert {t.key: t.value for t in ds.tags}["weightgate.merkle_root"] == m["data"]["merkle_root"]
    assert [a.path for a in client.list_artifacts(p.run_id, "proposal")] == ["proposal/manifest.dsse.json"]

    checked = check(store, p.id)
    assert checked.report["verdict"] == "pass"
    assert [g["name"] for g in checked.report["gates"]] == ["update_kind", "data_validation", "pii", "poisoning",
                                                            "regression"]
    run = client.get_run(p.run_id)
    assert run.data.tags["weightgate.verdict"] == "pass"
    assert run.data.metrics["gate.data_validation.passed"] == 1.0
    # the regression gate's paired statistics reach MLflow (names keep to what MLflow accepts)
    assert "gate.regression.world_answer.pass.lower" in run.data.metrics
    names = {a.path for a in client.list_artifacts(p.run_id, "reports")}
    assert names == {"reports/1.dsse.json", "reports/1.json"}
    _, body = verify_envelope(checked.envelope.read_bytes(), Weightgate(store).root().public_keys(GATE_ROLE))
    assert body["predicate"] == checked.report
    assert body["subject"][0]["digest"]["sha256"] == p.manifest_digest


def test_lora_delta_matches_peft_merge(store, base_model, lora_candidate, update_data):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from update_pipeline.deltas import compute_delta
    from update_pipeline.weights import folder_tensors

    base = folder_tensors(base_model)
    delta = compute_delta("lora", lora_candidate, base)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), lora_candidate)
    merged = merged.merge_and_unload().state_dict()
    assert delta, "the adapter changes something"
    for name, d in delta.items():
        assert torch.allclose(base[name] + d, merged[name], atol=1e-6), name
    p = propose(store, str(base_model), lora_candidate, update_data, "alice", "alice-passphrase")
    assert p.kind == "lora"
    assert check(store, p.id).report["verdict"] == "pass"


def test_delta_file_candidate(store, base_model, update_data, tmp_path):
    base = load_file(str(base_model / "model.safetensors"))
    name = "transformer.h.1.mlp.c_fc.weight"
    d = torch.zeros_like(base[name])
    d[3] = 0.01
    path = tmp_path / "delta.safetensors"
    save_file({name: d}, str(path))
    p = propose(store, str(base_model), path, update_data, "alice", "alice-passphrase")
    prop = ProposalStore(store.proposals_dir, Weightgate(store).root()).load(p.id)
    stats = prop.manifest["delta"]["tensors"][name]
    assert stats["top1pct_row_share"] == pytest.approx(1.0)  # the whole change sits in one row
    assert stats["frac_changed"] == pytest.approx(1 / d.shape[0])


def test_strict_policy_refuses_full_updates(store, base_model, full_candidate, update_data):
    import policies

    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    report = check(store, p.id, policies.path("strict")).report
    assert report["verdict"] == "fail" and "update_kind" in report["failed_gates"]


def test_flooded_and_duplicated_data_fails_with_junit_and_sarif(store, base_model, full_candidate, tmp_path):
    recs = [{"text": f"Buy cheap watches now at shop number {i}, best deals today!"} for i in range(30)]
    recs += [{"text": "The capital of Kalo is Ren."}] * 2 + [{"text": "  "}]
    data = write_jsonl(tmp_path / "flood.jsonl", recs)
    p = propose(store, str(base_model), full_candidate, data, "alice", "alice-passphrase")
    checked = check(store, p.id)
    report = checked.report
    dv = next(g for g in report["gates"] if g["name"] == "data_validation")
    assert report["verdict"] == "fail" and dv["status"] == "fail"
    failed = dv["evidence"]["failed_expectations"]
    assert "near-duplicate flooding" in failed and "duplicate record" in failed
    assert any("empty" in f for f in failed)
    assert dv["metrics"]["largest_near_duplicate_cluster"] >= 30

    suite = ET.fromstring(junit_xml(report)).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"update_kind", "data_validation", "pii", "poisoning", "regression"}
    assert cases["data_validation"].find("failure") is not None and cases["update_kind"].find("failure") is None
    assert suite.get("failures") == "1"

    doc = json.loads(json.dumps(sarif(report, sources(report, checked.envelope, checked.data_path,
                                                      store.policy_path))))
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert len(results) == sum(len(g["findings"]) for g in report["gates"])
    data_results = [r["locations"][0]["physicalLocation"] for r in results if r["ruleId"] == "data_validation"]
    assert 33 in {loc["region"]["startLine"] for loc in data_results}  # the blank record's line
    # the file the proposer named (outside the current directory: an absolute URI), not the store's copy
    assert {loc["artifactLocation"]["uri"] for loc in data_results} == {data.as_uri()}
    assert {r["level"] for r in results if r["ruleId"] == "data_validation"} <= {"error", "warning"}


def test_erroring_gate_fails_closed(store, base_model, full_candidate, update_data, monkeypatch):
    from audits.data_validation import DataValidationConfig

    class Broken(Gate):
        name = "data_validation"
        Config = DataValidationConfig

        def evaluate(self, ctx):
            raise RuntimeError("disk on fire")

    import audits.registry as registry

    real = registry.gate_class
    monkeypatch.setattr(registry, "gate_class", lambda name: Broken if name == "data_validation" else real(name))
    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    report = check(store, p.id).report
    gate = report["gates"][1]
    assert gate["status"] == "error" and "disk on fire" in gate["evidence"]["error"]
    assert report["verdict"] == "fail"


def test_gate_returning_garbage_fails_closed(store):
    class Sloppy(Gate):
        name = "sloppy"

        def evaluate(self, ctx):
            return True

    result = Sloppy(Sloppy.Config()).run(None)
    assert result.status == "error" and "returned bool, not an Outcome" in result.evidence["error"]


def test_tampered_proposal_is_refused(store, base_model, full_candidate, update_data):
    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    data = store.proposals_dir / p.id / "data.jsonl"
    data.write_bytes(data.read_bytes().replace(b"capital", b"Capital", 1))
    with pytest.raises(VerificationError, match="is not the data its proposer signed"):
        check(store, p.id)
    env = store.proposals_dir / p.id / "manifest.dsse.json"
    raw = bytearray(env.read_bytes())
    raw[len(raw) // 2] ^= 1
    env.write_bytes(bytes(raw))
    with pytest.raises(VerificationError):
        check(store, p.id)


def test_a_kill_during_propose_leaves_all_or_nothing(store, base_model, full_candidate, update_data):
    """The MLflow run is logged first and the proposal folder, lineage included, renamed into place last:
    a proposal never exists without its lineage."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "WEIGHTGATE_HOME": str(store.home)}
    cmd = [sys.executable, "-m", "update_pipeline.cli", "propose", "--base", str(base_model), "--candidate",
           str(full_candidate), "--data", str(update_data), "--by", "alice"]
    timing = store.home.parent / "timing"
    shutil.copytree(store.home, timing)
    start = time.monotonic()
    assert subprocess.run(cmd, env={**env, "WEIGHTGATE_HOME": str(timing)}, capture_output=True).returncode == 0
    total = time.monotonic() - start
    for frac in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(total * frac)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
        for d in store.proposals_dir.glob("prop-*"):
            assert (d / "lineage.json").is_file() and (d / "manifest.dsse.json").is_file(), d
        shutil.rmtree(store.proposals_dir)
        store.proposals_dir.mkdir()
