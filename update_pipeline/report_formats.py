"""A check report as JUnit XML (one testcase per gate) and SARIF 2.1.0 (one result per finding).

The SARIF is what GitHub code scanning and GitLab take in: every result has a location (a data finding: the
update data file the proposer named, at the record's line; a model-level finding: the suite file at the
case's line, or the policy file at the line of the gate, or of the option, that judged it), and its level
follows the gate: a finding that fails the check is an error, one of a warn-mode gate (or of a gate that
passed) a warning, a note a note. Relative paths are relative to %SRCROOT%, the directory the commands ran
in (in CI, the repository root).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
_BLOCKING = ("fail", "error")
# a model-level finding that an option of its gate judged: (gate, start of the message, option)
_OPTIONS = (("regression", "forgets the update", "max_forgetting"),
            ("regression", "backward transfer", "min_backward_transfer"),
            ("poisoning", "inserting ", "behaviour_scan"))
_CRITICAL = re.compile(r"^critical case (\S+) \(")
_SUITE_CASE = re.compile(r"^([^:\s]+):[^:\s]+: (\S+) passed on the base")
_SUITE_METRIC = re.compile(r"^([^:\s]+):[^:\s]+")


def junit_xml(report: dict[str, Any]) -> bytes:
    gates = report["gates"]
    suite = ET.Element("testsuite", {
        "name": f"weightgate.{report['proposal']}", "tests": str(len(gates)),
        "failures": str(sum(g["status"] == "fail" for g in gates)),
        "errors": str(sum(g["status"] == "error" for g in gates)),
        "skipped": "0", "time": f"{sum(g['duration_s'] for g in gates):.3f}"})
    for g in gates:
        case = ET.SubElement(suite, "testcase", {"classname": "weightgate.gates", "name": g["name"],
                                                 "time": f"{g['duration_s']:.3f}"})
        lines = [f["message"] + (f" (record {f['record_id']}, line {f['line']})" if "record_id" in f else "")
                 for f in g["findings"]]
        if g["status"] in ("fail", "error"):
            tag = "failure" if g["status"] == "fail" else "error"
            el = ET.SubElement(case, tag, {"message": f"gate {g['name']}: {g['status']}", "type": g["status"]})
            el.text = "\n".join(lines)
        elif lines or g["status"] == "warn":
            ET.SubElement(case, "system-out").text = "\n".join([f"status: {g['status']}", *lines])
    root = ET.Element("testsuites", {"name": "weightgate check"})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class Sources:
    """The files a report's findings point at."""

    data: str | Path  # the update data: as the proposer named it (relative: to %SRCROOT%), or the store's copy
    policy: Path | None = None  # the policy file the check ran under
    suites: Mapping[str, Path] = field(default_factory=dict)  # suite name -> its file


def sources(report: dict[str, Any], report_path: Path, store_data: Path, policy: Path) -> Sources:
    """The files behind a report just made: the data path its proposal's signed manifest records (proposals
    from before it was recorded: the store's copy), the policy file, and the suite files the report's policy
    digests name (a suite file changed since is left out: its lines would be another file's)."""
    from audits.suites import locate
    from governance.errors import WeightgateError
    from governance.signing import sha256_hex, unverified_statement

    data: str | Path = store_data
    try:
        envelope = (report_path.parent.parent / "manifest.dsse.json").read_bytes()
        if sha256_hex(envelope) == report["manifest_digest"]:  # the manifest the signed report names
            data = unverified_statement(envelope)["predicate"]["data"].get("source") or store_data
    except (OSError, WeightgateError, KeyError, TypeError, AttributeError):
        pass
    suites = {}
    for name, digest in (report["policy"].get("suites") or {}).items():
        try:
            path = locate(name, policy.resolve().parent)
            if sha256_hex(path.read_bytes()) == digest:
                suites[name] = path
        except (OSError, WeightgateError):
            continue
    return Sources(data, policy if policy.is_file() else None, suites)


def _artifact(path: str | Path, root: Path) -> dict[str, str]:
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(root)
        except ValueError:
            return {"uri": p.as_uri()}
    return {"uri": quote(p.as_posix()), "uriBaseId": SRCROOT}


def _read(path: Path | None) -> str:
    try:
        return path.read_text(encoding="utf-8") if path else ""
    except (OSError, UnicodeDecodeError):
        return ""


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of each mapping key of a YAML document, three levels deep, by its path of keys."""
    import yaml

    out: dict[tuple[str, ...], int] = {}

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode) and len(prefix) < 3:
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    out[(*prefix, key.value)] = key.start_mark.line + 1
                    walk(value, (*prefix, key.value))

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return out


def _case_line(text: str, case_id: str) -> int | None:
    """The line of a suite case by its id (a YAML or JSONL suite, a case's id on the line that names it)."""
    pattern = re.compile(r"""(^|[\s{,])["']?id["']?\s*:\s*["']?""" + re.escape(case_id) + r"""["']?\s*(,|}|$)""")
    return next((n for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)), None)


class _Locator:
    def __init__(self, src: Sources, root: Path) -> None:
        self.src, self.root = src, root
        self.policy_keys = _key_lines(_read(src.policy))
        self.suite_text = {name: _read(path) for name, path in src.suites.items()}

    def _at(self, path: str | Path, line: int) -> list[dict[str, Any]]:
        return [{"physicalLocation": {"artifactLocation": _artifact(path, self.root),
                                      "region": {"startLine": max(1, line)}}}]

    def __call__(self, gate: str, finding: dict[str, Any]) -> list[dict[str, Any]]:
        if "line" in finding:
            return self._at(self.src.data, finding["line"])
        message = finding["message"]
        if gate == "regression":
            hit = _CRITICAL.match(message) or _SUITE_CASE.match(message)
            named = [hit.group(1)] if hit and hit.re is _SUITE_CASE else list(self.suite_text)
            case = hit.group(hit.re.groups).split("|", 1)[0] if hit else None
            for name in named:
                line = _case_line(self.suite_text.get(name, ""), case) if case else None
                if line:
                    return self._at(self.src.suites[name], line)
            metric = _SUITE_METRIC.match(message)
            if metric and metric.group(1) in self.src.suites:
                return self._at(self.src.suites[metric.group(1)], 1)
        if self.src.policy is None:
            return self._at(self.src.data, 1)
        keys = self.policy_keys
        option = next((o for g, start, o in _OPTIONS if g == gate and message.startswith(start)), None)
        line = (keys.get(("gates", gate, option or "")) or keys.get(("gates", gate))
                or keys.get(("allowed_update_kinds",) if gate == "update_kind" else ("gates",)) or 1)
        return self._at(self.src.policy, line)


def _level(finding: dict[str, Any], gate: dict[str, Any]) -> str:
    level = finding.get("level", "error")
    if level in ("note", "warning"):
        return level
    return "error" if gate["status"] in _BLOCKING else "warning"


def _driver(rules: list[dict[str, Any]]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, metadata

    driver: dict[str, Any] = {"name": "weightgate"}
    try:
        meta = metadata("weightgate")
        driver["version"] = driver["semanticVersion"] = meta["Version"]
        urls = [u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or [] if "," in u]
        if meta.get("Home-page") or urls:
            driver["informationUri"] = meta.get("Home-page") or urls[0]
    except PackageNotFoundError:
        pass
    return {**driver, "rules": rules}


def sarif(report: dict[str, Any], src: Sources | Path | str, root: Path | None = None) -> dict[str, Any]:
    """The report as a SARIF log; `src` the files its findings point at (a bare path: the data file only,
    model-level findings then point at its first line)."""
    src = src if isinstance(src, Sources) else Sources(src)
    locate = _Locator(src, (root or Path.cwd()).absolute())
    rules, results = [], []
    for index, g in enumerate(report["gates"]):
        mode = g.get("mode", "enforce")
        rules.append({"id": g["name"], "name": g["name"],
                      "shortDescription": {"text": f"weightgate gate {g['name']} ({mode} mode)"},
                      "defaultConfiguration": {"level": "error" if mode == "enforce" else "warning"}})
        for f in g["findings"]:
            res: dict[str, Any] = {"ruleId": g["name"], "ruleIndex": index, "level": _level(f, g),
                                   "message": {"text": f["message"]}, "locations": locate(g["name"], f),
                                   "properties": {"gate_status": g["status"], "gate_mode": mode}}
            if "record_id" in f:
                res["properties"]["record_id"] = f["record_id"]
            results.append(res)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": _driver(rules)},
        "invocations": [{"executionSuccessful": True, "exitCode": 0 if report["verdict"] == "pass" else 1}],
        "results": results,
        "properties": {"proposal": report["proposal"], "verdict": report["verdict"],
                       "failed_gates": report.get("failed_gates", [])}}]}


def write_sarif(report: dict[str, Any], src: Sources | Path | str, out: Path) -> None:
    out.write_text(json.dumps(sarif(report, src), indent=2) + "\n")
