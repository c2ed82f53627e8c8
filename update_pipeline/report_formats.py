"""A check report as JUnit XML (one testcase per gate) and SARIF 2.1.0 (one result per finding)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


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


def sarif(report: dict[str, Any], data_path: Path) -> dict[str, Any]:
    rules = [{"id": g["name"], "shortDescription": {"text": f"weightgate gate {g['name']}"}}
             for g in report["gates"]]
    results = []
    for g in report["gates"]:
        for f in g["findings"]:
            res: dict[str, Any] = {"ruleId": g["name"], "level": _LEVEL.get(f.get("level", "error"), "error"),
                                   "message": {"text": f["message"]}}
            if "line" in f:
                res["locations"] = [{"physicalLocation": {
                    "artifactLocation": {"uri": data_path.as_uri()}, "region": {"startLine": f["line"]}}}]
            if "record_id" in f:
                res["properties"] = {"record_id": f["record_id"]}
            results.append(res)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "weightgate", "informationUri": "https://weightgate.dev", "rules": rules}},
        "results": results,
        "properties": {"proposal": report["proposal"], "verdict": report["verdict"]}}]}


def write_sarif(report: dict[str, Any], data_path: Path, out: Path) -> None:
    out.write_text(json.dumps(sarif(report, data_path), indent=2) + "\n")
