"""SARIF as code scanning takes it: valid against the OASIS SARIF 2.1.0 schema, every result located, levels that
follow the gate's mode, the driver's real version."""

import json
from importlib.metadata import metadata
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema.validators import validator_for

from audits.suites import locate
from governance.records import Finding, GateResult, Report
from governance.signing import sha256_hex, sign_envelope, statement
from update_pipeline import world
from update_pipeline.report_formats import SRCROOT, Sources, sarif, sources

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())


def assert_valid_sarif(doc: dict) -> None:
    """Valid against the vendored schema (with the schema's own draft), and located as code scanning needs."""
    assert SCHEMA["id"].endswith("/sarif-schema-2.1.0.json")
    errors = sorted(validator_for(SCHEMA)(SCHEMA).iter_errors(doc), key=str)
    assert not errors, errors[0]
    for result in doc["runs"][0]["results"]:
        assert result["locations"], result
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _report() -> dict:
    gates = (
        GateResult("update_kind", "pass", findings=(Finding("approximate revert", "note"),)),
        GateResult("data_validation", "fail", findings=(Finding("empty field", "error", "r-1", 3),
                                                        Finding("near-duplicate", "warning", "r-2", 5))),
        GateResult("pii", "warn", findings=(Finding("EMAIL_ADDRESS in 'text' at 0-9", "error", "r-3", 2),),
                   mode="warn"),
        GateResult("poisoning", "fail", findings=(Finding("inserting 'cf' makes the candidate answer 'x'"),
                                                  Finding("transformer.h.0.mlp.c_fc.weight: concentrated"))),
        GateResult("regression", "fail", findings=(
            Finding("critical case capital-of-Torilo (answer) lost: passed on the base, fails now: answers 'x'"),
            Finding("world:answer.pass: export-of-Solmidor passed on the base, fails now: answers 'y'"),
            Finding("world:answer.pass: base 0.9 -> candidate 0.5 (mean change -0.4)"),
            Finding("forgets the update that made ledger:1: retention:ledger:1 ..."))),
    )
    return Report("prop-0123456789", "d" * 64, "default", "e" * 64, gates, 1.0).to_dict()


def test_every_result_located_and_levelled_by_the_gate(tmp_path):
    policy = world.policy(tmp_path / "ci" / "policy.yaml")
    suite = locate("world")
    doc = sarif(_report(), Sources("updates/new/data.jsonl", policy, {"world": suite}), root=tmp_path)
    assert_valid_sarif(doc)
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "weightgate" and driver["version"] == metadata("weightgate")["Version"]
    assert "informationUri" not in driver or driver["informationUri"].startswith("https://")
    assert run["invocations"][0]["exitCode"] == 1
    got = [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]) for r in run["results"]]

    def where(loc):
        return loc["artifactLocation"].get("uriBaseId"), loc["artifactLocation"]["uri"], loc["region"]["startLine"]

    data = (SRCROOT, "updates/new/data.jsonl")
    pol = (SRCROOT, "ci/policy.yaml")
    world_suite = (None, suite.as_uri())  # outside the root: an absolute URI
    assert [(rule, level, where(loc)) for rule, level, loc in got] == [
        ("update_kind", "note", (*pol, _line_of(policy, "allowed_update_kinds:"))),
        ("data_validation", "error", (*data, 3)),
        ("data_validation", "warning", (*data, 5)),
        ("pii", "warning", (*data, 2)),  # a warn-mode gate's findings never read as errors
        ("poisoning", "error", (*pol, _line_of(policy, "behaviour_scan:"))),
        ("poisoning", "error", (*pol, _line_of(policy, "  poisoning:"))),
        ("regression", "error", (*world_suite, _line_of(suite, '"id": "capital-of-Torilo"'))),
        ("regression", "error", (*world_suite, _line_of(suite, '"id": "export-of-Solmidor"'))),
        ("regression", "error", (*world_suite, 1)),
        ("regression", "error", (*pol, _line_of(policy, "max_forgetting:"))),
    ]
    rules = {r["id"]: r["defaultConfiguration"]["level"] for r in driver["rules"]}
    assert rules["pii"] == "warning" and rules["regression"] == "error"


def test_a_passing_check_reports_its_leftover_findings_as_warnings(tmp_path):
    report = Report("prop-0123456789", "d" * 64, "default", "e" * 64,
                    (GateResult("pii", "pass", findings=(Finding("PERSON in 'text'", "error", "r-1", 1),)),),
                    1.0).to_dict()
    doc = sarif(report, tmp_path / "data.jsonl", root=tmp_path)
    assert_valid_sarif(doc)
    assert [r["level"] for r in doc["runs"][0]["results"]] == ["warning"]
    assert doc["runs"][0]["invocations"][0]["exitCode"] == 0


@pytest.mark.parametrize("recorded", ["updates/a b/data.jsonl", None])
def test_sources_read_the_signed_manifest(tmp_path, recorded):
    pdir = tmp_path / "proposals" / "prop-0123456789"
    (pdir / "reports").mkdir(parents=True)
    data = {"records": 1, **({"source": recorded} if recorded else {})}
    key = Ed25519PrivateKey.generate()
    envelope = sign_envelope(statement({"data.jsonl": "0" * 64}, "Proposal/v1", {"data": data}), key, "k")
    (pdir / "manifest.dsse.json").write_bytes(envelope)
    policy = world.policy(tmp_path / "policy.yaml")
    report = _report() | {"manifest_digest": sha256_hex(envelope)}
    report["policy"]["suites"] = {"world": sha256_hex(locate("world").read_bytes()), "gone": "0" * 64}
    src = sources(report, pdir / "reports" / "1.dsse.json", pdir / "data.jsonl", policy)
    assert src.data == (recorded or pdir / "data.jsonl") and src.policy == policy
    assert dict(src.suites) == {"world": locate("world")}  # a suite whose file is not the one judged is left out
    loc = sarif(report, src, root=tmp_path)["runs"][0]["results"][1]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == ({"uri": "updates/a%20b/data.jsonl", "uriBaseId": SRCROOT} if recorded
                                       else {"uri": "proposals/prop-0123456789/data.jsonl", "uriBaseId": SRCROOT})
    other = sources(report | {"manifest_digest": "f" * 64}, pdir / "reports" / "1.dsse.json", pdir / "data.jsonl",
                    policy)
    assert other.data == pdir / "data.jsonl"  # a manifest the report does not name is not read
