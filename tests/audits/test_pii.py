"""Real Presidio on real text: each entity type, scrubbing, residuals, and no raw value in any output."""

import base64
import json
import subprocess
import sys

import pytest

from audits.pii_engine import PiiConfig, scan, scrub_records
from governance.data import load_jsonl
from governance.data import write_jsonl as dump_jsonl
from tests.conftest import write_jsonl
from update_pipeline import world

CASES = {
    "PERSON": ["Hi, my name is Dalia Haddad and I need help.", "Thanks for the quick reply.\nRegards,\nGoran",
               "Dear Keiko, your parcel has shipped."],
    "EMAIL_ADDRESS": ["Write to dalia.h@example.org for details."],
    "PHONE_NUMBER": ["Call +44 20 7946 0321 today.", "Our office line is (415) 555-0134.",
                     "Reach me at +49 30 901820 anytime."],
    "STREET_ADDRESS": ["Ship it to 42 Harbour Road, Bristol BS1 4AB please.",
                       "She moved to 1600 Cedar Avenue, Springfield, IL 62704 last year."],
    "CREDIT_CARD": ["My card is 4111 1111 1111 1111."],
    "IBAN_CODE": ["Pay into GB82 WEST 1234 5698 7654 32."],
    "US_SSN": ["His SSN is 536-22-8745."],
    "IP_ADDRESS": ["The login came from 203.0.113.77."],
    "SECRET": ["export AWS_KEY=AKIAIOSFODNN7EXAMPLE", "password = hunter2hunter2",
               "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
               "-----END RSA PRIVATE KEY-----"],
}
VALUES = {"Dalia Haddad", "Goran", "Keiko", "dalia.h@example.org", "+44 20 7946 0321", "(415) 555-0134",
          "4111 1111 1111 1111", "536-22-8745", "203.0.113.77", "AKIAIOSFODNN7EXAMPLE"}


@pytest.fixture(scope="module")
def cfg():
    return PiiConfig()


def _records(tmp_path, texts):
    return load_jsonl(write_jsonl(tmp_path / "d.jsonl", [{"text": t} for t in texts]))


@pytest.mark.parametrize("entity", sorted(CASES))
def test_each_entity_type_is_found_with_exact_offsets(entity, cfg, tmp_path):
    records = _records(tmp_path, CASES[entity])
    for record, found in zip(records, scan(records, cfg), strict=True):
        hits = [f for f in found if f.entity_type == entity]
        assert hits, (entity, record.fields["text"], found)
        for f in hits:
            value = record.fields["text"][f.start:f.end]
            assert value.strip() == value and value


def test_world_facts_are_not_personal_data_once_its_names_are_allowed(cfg, tmp_path):
    """The spaCy model takes the world's invented places for people ("What does Kane export?"): the world's
    policy allows its vocabulary by pattern, as a user allows a corpus's own proper nouns."""
    records = load_jsonl(dump_jsonl(world.corpus(), tmp_path / "w.jsonl"))
    assert any(scan(records, cfg))
    allowed = PiiConfig(allow_patterns=[world.VOCABULARY])
    assert not any(scan(records, allowed))
    people = _records(tmp_path, ["Ticket 7: Dalia Haddad called from +44 20 7946 0321 about Kane."])
    assert {f.entity_type for f in scan(people, allowed)[0]} == {"PERSON", "PHONE_NUMBER"}


def test_scrubbing_is_consistent_keyed_and_leaves_no_residue(cfg, tmp_path):
    texts = ["Customer Dalia Haddad (dalia.h@example.org) called.", "Dalia Haddad called again from +44 20 7946 0321."]
    records = _records(tmp_path, texts)
    a = scrub_records(records, cfg, b"key-one")
    b = scrub_records(records, cfg, b"key-two")
    stand_in = a[0]["text"].split("Customer ")[1].split(" ")[0]
    assert stand_in.startswith("<PERSON_") and stand_in in a[1]["text"]  # same value, same stand-in
    assert stand_in not in b[0]["text"]  # another key, another stand-in
    assert [r["id"] for r in a] == [r.id for r in records]
    plain = scrub_records(records, cfg, None)
    assert "<PERSON>" in plain[0]["text"] and "<EMAIL_ADDRESS>" in plain[0]["text"]
    rescanned = load_jsonl(dump_jsonl(a, tmp_path / "s.jsonl"))
    assert not any(scan(rescanned, cfg))
    assert not any(v in json.dumps(a) for v in ("Dalia", "dalia.h@example.org", "7946"))


def test_scan_json_contract(tmp_path):
    texts = [t for ts in CASES.values() for t in ts] + ["Nothing personal here."]
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)])
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(tmp_path / "h"), "pii", "scan",
                        str(data), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [rec["id"] for rec in out["records"]] == [f"r{i}" for i in range(len(texts))]
    assert out["records"][-1]["findings"] == []
    for rec, text in zip(out["records"], texts, strict=True):
        for f in rec["findings"]:
            assert set(f) == {"field", "entity_type", "start", "end", "score"} and f["field"] == "text"
            assert 0 <= f["start"] < f["end"] <= len(text)
    assert out["summary"]["records_with_pii"] == len(texts) - 1


def test_no_raw_value_in_any_output_of_a_check(store, base_model, full_candidate, tmp_path):
    texts = [t for ts in CASES.values() for t in ts]
    data = write_jsonl(tmp_path / "pii.jsonl", [{"text": t} for t in texts])
    env_home = {"WEIGHTGATE_HOME": str(store.home)}
    import os

    def run(*args):
        return subprocess.run([sys.executable, "-m", "update_pipeline.cli", *args], capture_output=True, text=True,
                              env={**os.environ, **env_home}, timeout=600)

    r = run("propose", "--base", str(base_model), "--candidate", str(full_candidate), "--data", str(data),
            "--by", "alice")
    assert r.returncode == 0, r.stderr
    pid = r.stdout.split()[1]
    junit, sarif = tmp_path / "r.xml", tmp_path / "r.sarif"
    r = run("check", pid, "--json", "--junit", str(junit), "--sarif", str(sarif))
    assert r.returncode == 1
    report = json.loads(r.stdout)
    pii = next(g for g in report["gates"] if g["name"] == "pii")
    assert pii["status"] == "fail" and pii["metrics"]["records_with_pii"] == len(texts)
    assert pii["evidence"]["masked_examples"] and pii["evidence"]["by_entity_type"]["PERSON"] >= 3
    outputs = [r.stdout, r.stderr, run("check", pid).stdout, junit.read_text(), sarif.read_text()]
    for env in (store.proposals_dir / pid / "reports").glob("*.dsse.json"):
        outputs.append(base64.b64decode(json.loads(env.read_bytes())["payload"]).decode())
    for p in store.artifacts_dir.rglob("*"):
        if p.is_file():
            outputs.append(p.read_bytes().decode("utf-8", "replace"))
    outputs.append((store.home / "mlflow.db").read_bytes().decode("utf-8", "replace"))
    for value in VALUES:
        assert not any(value in out for out in outputs), value


def test_policy_extra_recognizer_and_allow_list(tmp_path):
    from audits.pii_engine import ExtraRecognizer

    cfg = PiiConfig(extra_recognizers=[ExtraRecognizer(entity="CUSTOMER_ID", patterns=[r"\bCUST-\d{6}\b"])],
                    allow_list=["Dalia Haddad"])
    records = _records(tmp_path, ["Account CUST-123456 belongs to Dalia Haddad, reach Goran Novak instead."])
    (found,) = scan(records, cfg)
    text = records[0].fields["text"]
    assert {(f.entity_type, text[f.start:f.end]) for f in found} == {("CUSTOMER_ID", "CUST-123456"),
                                                                     ("PERSON", "Goran Novak")}
    with pytest.raises(ValueError):
        ExtraRecognizer(entity="X", patterns=["(unclosed"])
