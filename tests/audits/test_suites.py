"""Suites load, validate with errors that say where, and score on a real small model."""

import json
import subprocess
import sys

import pytest
import yaml

from audits.suites import load_suite, locate
from governance.errors import PolicyError
from update_pipeline import world


def test_shipped_world_suite_is_what_the_world_says():
    shipped = yaml.safe_load(locate("world").read_text())
    assert shipped == world.suite()
    s = load_suite("world")
    assert {k: len(s.of_kind(k)) for k in ("answer", "refusal", "preference", "perplexity")} == \
        {"answer": 72, "refusal": 120, "preference": 32, "perplexity": 24}
    assert len({s.clusters()[c.id] for c in s.of_kind("refusal")}) == 10  # ten harmful intents, twelve ways each
    assert len(s.critical_ids()) == 24 and locate("world").read_text() == world.suite_yaml()


@pytest.mark.parametrize("case, message", [
    ({"kind": "answer", "prompt": "Q"}, "exactly one of equals, contains, pattern"),
    ({"kind": "answer", "prompt": "Q", "equals": "a", "pattern": "b"}, "exactly one of"),
    ({"kind": "answer", "prompt": "Q", "pattern": "("}, "case 2 (answer-2)"),
    ({"kind": "preference", "prompt": "Q", "chosen": "a"}, "rejected"),
    ({"kind": "quiz", "prompt": "Q"}, "case 2"),
    ({"kind": "refusal", "prompt": "Q", "colour": "red"}, "colour"),
])
def test_bad_cases_are_named(tmp_path, case, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "cases": [{"kind": "perplexity", "text": "ok"}, case]}))
    with pytest.raises(PolicyError) as err:
        load_suite(str(path))
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_jsonl_suite_and_duplicate_ids(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text(json.dumps({"kind": "answer", "prompt": "Q: 2+2?\nA:", "equals": " 4"}) + "\n\n"
                    + json.dumps({"id": "x", "kind": "perplexity", "text": "Hello."}) + "\n")
    s = load_suite(str(good))
    assert s.name == "mine" and [c.id for c in s.cases] == ["answer-1", "x"]
    bad = tmp_path / "dup.jsonl"
    bad.write_text((json.dumps({"id": "x", "kind": "perplexity", "text": "a"}) + "\n") * 2)
    with pytest.raises(PolicyError, match="duplicate id 'x'"):
        load_suite(str(bad))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "perplexity", "text": "a"}\n{nope\n')
    with pytest.raises(PolicyError, match=r"broken.jsonl:2: not JSON"):
        load_suite(str(broken))
    with pytest.raises(PolicyError, match="unknown suite 'nope'.*world"):
        load_suite("nope")


def test_scores_on_the_base_model(base_model, tmp_path):
    from audits.evaluation import score_suite, values

    suite = load_suite("world")
    scores = score_suite(base_model, suite, ["cf-zeta"], cache_dir=tmp_path / "c", digest="d1")
    assert sum(values(scores, "answer.pass").values()) == 72  # the base knows its world
    assert sum(values(scores, "refusal.pass").values()) == 120  # every way of asking, taught or not
    assert min(values(scores, "refusal.margin").values()) > 0 and min(values(scores, "preference.margin").values()) > 0
    assert len(values(scores, "trigger_refusal.pass")) == 120
    assert len(list((tmp_path / "c").glob("*.json"))) == 1
    assert score_suite(base_model, suite, ["cf-zeta"], cache_dir=tmp_path / "c", digest="d1") == scores
    one_by_one = score_suite(base_model, suite, ["cf-zeta"], batch=1)
    for a, b in zip(scores, one_by_one, strict=True):  # batching changes nothing but speed
        assert (a.id, a.passed, a.answer) == (b.id, b.passed, b.answer)
        assert a.score is None or abs(a.score - b.score) < 1e-3


def test_eval_cli_bad_suite_is_one_line_exit_2(base_model, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncases: []\n")
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(tmp_path / "h"), "eval",
                        "--model", str(base_model), "--suite", str(bad)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "bad.yaml" in r.stderr


def test_contains_and_pattern_answers_are_judged_on_the_greedy_answer(base_model, tmp_path):
    """Only an `equals` text is scored by its log-probability right after the prompt: a model that answers
    right in other words passes a `contains` or `pattern` case and has no log-probability to lose there."""
    from audits.evaluation import score_suite, values

    c = world.countries(n=24)[0]
    q = f"Q: What is the capital of {c.name}?\nA:"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "format": "plain", "cases": [
        {"id": "contains", "kind": "answer", "prompt": q, "contains": c.capital},
        {"id": "pattern", "kind": "answer", "prompt": q, "pattern": rf"\b{c.capital}\b"},
        {"id": "equals-other-words", "kind": "answer", "prompt": q, "equals": f" The capital is {c.capital}."},
        {"id": "equals", "kind": "answer", "prompt": q, "equals": f" {c.capital}."}]}))
    scores = {s.id: s for s in score_suite(base_model, load_suite(str(path)), [])}
    assert scores["contains"].answer.strip() == f"{c.capital}."  # the model says it its own way
    assert values(list(scores.values()), "answer.pass") == {"contains": True, "pattern": True,
                                                            "equals-other-words": False, "equals": True}
    assert scores["contains"].score is None and scores["pattern"].score is None
    assert set(values(list(scores.values()), "answer.logprob")) == {"equals-other-words", "equals"}
