from pathlib import Path

import pytest

import policies
from audits.registry import load_policy
from governance.errors import PolicyError


@pytest.mark.parametrize("name", ["default", "strict", "world"])
def test_shipped_policies_load(name):
    p = load_policy(policies.path(name))
    assert p.name == name and p.gates and len(p.digest) == 64


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


GOOD = """version: 1
name: t
allowed_update_kinds: [full]
approvals: {required: 1}
gates:
  data_validation: {max_field_chars: 100}
"""


def test_digest_covers_the_suite_files(tmp_path):
    """Changing a suite the regression gate uses changes the policy's digest; the file digest stays."""
    import shutil

    import policies

    suite = tmp_path / "mine.yaml"
    shutil.copyfile(policies.path("world").parent / "suites" / "world.yaml", suite)
    text = policies.path("world").read_text().replace("suites: [world]", f"suites: [{suite}]")
    a = load_policy(_write(tmp_path, text))
    suite.write_text(suite.read_text().replace("name: world", "name: world2"))
    b = load_policy(_write(tmp_path, text))
    assert a.file_digest == b.file_digest and a.digest != b.digest and a.suites != b.suites


def test_suite_paths_resolve_from_the_policy_file_never_the_current_directory(tmp_path, monkeypatch):
    import shutil

    import policies

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "suites").mkdir(parents=True)
    (elsewhere / "suites").mkdir(parents=True)
    world = policies.path("world").parent / "suites" / "world.yaml"
    shutil.copyfile(world, home / "suites" / "mine.yaml")
    (elsewhere / "suites" / "mine.yaml").write_text("name: decoy\ncases: [{kind: perplexity, text: x}]\n")
    text = policies.path("world").read_text().replace("suites: [world]", "suites: [suites/mine.yaml]")
    (home / "policy.yaml").write_text(text)
    monkeypatch.chdir(elsewhere)
    p = load_policy(home / "policy.yaml")
    assert p.suite_files == {"suites/mine.yaml": str(home / "suites" / "mine.yaml")}
    from audits.registry import build_gates

    gate = next(g for g in build_gates(p) if g.name == "regression")
    assert gate.config.suites == [str(home / "suites" / "mine.yaml")]
    (home / "suites" / "mine.yaml").unlink()
    with pytest.raises(PolicyError, match="suite file 'suites/mine.yaml' not found"):
        load_policy(home / "policy.yaml")


def test_unknown_gate_lists_valid_ones(tmp_path):
    bad = GOOD.replace("data_validation: {max_field_chars: 100}", "no_such_gate: {}")
    with pytest.raises(PolicyError, match=r"unknown gate 'no_such_gate'; valid gates: .*data_validation"):
        load_policy(_write(tmp_path, bad))


@pytest.mark.parametrize("text, match", [
    (GOOD + "extra_key: 1\n", "extra_key"),
    (GOOD.replace("max_field_chars: 100", "max_feld_chars: 100"), r"gates.data_validation.max_feld_chars"),
    (GOOD.replace("required: 1", "required: 0"), "approvals.required"),
    (GOOD.replace("[full]", "[full, pickle]"), "allowed_update_kinds"),
    ("version: 1\nname: t\nallowed_update_kinds: [full]\napprovals: {required: 1}\ngates: {}\n", "gates"),
    ("version: 1\n  name: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "a YAML mapping"),
    (GOOD + "witnesses: [relative/file.jsonl]\n", "witnesses: .*absolute file path"),
    (GOOD + "witnesses: ['https://example.org/log']\n", "witnesses: .*absolute file path"),
    (GOOD + "digest: abc\n", "is computed"),
    (GOOD + "suites: {}\n", "is computed"),
])
def test_policy_errors_never_fall_back(tmp_path, text, match):
    with pytest.raises(PolicyError, match=match):
        load_policy(_write(tmp_path, text))


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "absent.yaml")
