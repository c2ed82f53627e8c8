from pathlib import Path

import pytest

import policies
from audits.registry import load_policy
from governance.errors import PolicyError


@pytest.mark.parametrize("name", ["default", "strict"])
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
])
def test_policy_errors_never_fall_back(tmp_path, text, match):
    with pytest.raises(PolicyError, match=match):
        load_policy(_write(tmp_path, text))


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "absent.yaml")
