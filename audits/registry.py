"""The explicit gate registry: policy name -> gate class, loaded lazily.

An unknown name is an error that lists the valid ones. Each gate's options are
validated by its own config model, so a misspelled threshold is an error too.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic import ValidationError

from audits.base import Gate
from governance.errors import PolicyError
from governance.policy import Policy, parse_policy, with_suites

GATES: dict[str, str] = {
    "data_validation": "audits.data_validation:DataValidationGate",
    "pii": "audits.pii:PiiGate",
    "poisoning": "audits.poisoning:PoisoningGate",
    "regression": "audits.regression:RegressionGate",
}


def gate_class(name: str) -> type[Gate]:
    try:
        target = GATES[name]
    except KeyError:
        raise PolicyError(f"unknown gate {name!r}; valid gates: {', '.join(sorted(GATES))}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def build_gates(policy: Policy, where: str = "policy") -> list[Gate]:
    """One configured gate per gate the policy requires, in policy order."""
    gates = []
    for name, options in policy.gates.items():
        try:
            cls = gate_class(name)
        except PolicyError as exc:
            raise PolicyError(f"{where}: gates.{name}: {exc}") from None
        if name == "regression" and policy.suite_files:  # suites as resolved from the policy file's folder
            options = {**options, "suites": [policy.suite_files.get(s, s) for s in options.get("suites", ["world"])]}
        try:
            gates.append(cls(cls.Config(**options)))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise PolicyError(f"{where}: gates.{name}.{loc}: {first['msg']}") from None
    return gates


def load_policy(path: Path) -> Policy:
    """Parse a policy and check every gate name and option; errors, never fallbacks. Its digest covers
    the file and every suite file its regression gate uses."""
    policy = parse_policy(path)
    gates = build_gates(policy, str(path))
    files: dict[str, Path] = {}
    for gate in gates:
        if gate.name == "regression":
            from audits.suites import locate

            files = {name: locate(name, path.resolve().parent) for name in gate.config.suites}  # type: ignore[attr-defined]
    return with_suites(policy, files)
