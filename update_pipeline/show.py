"""Terminal rendering of reports: a table per check, a line per finding."""

from __future__ import annotations

from typing import Any

_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "error": "bold red"}


def print_report(report: dict[str, Any], max_findings: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"check {report['proposal']} under policy {report['policy']['name']}")
    table.add_column("gate")
    table.add_column("status")
    table.add_column("key metrics")
    table.add_column("findings", justify="right")
    table.add_column("time", justify="right")
    for g in report["gates"]:
        metrics = ", ".join(f"{k}={v:g}" for k, v in list(g["metrics"].items())[:4])
        table.add_row(g["name"], f"[{_STYLE[g['status']]}]{g['status']}[/]", metrics, str(len(g["findings"])),
                      f"{g.get('duration_s', 0.0):.1f} s")
    console.print(table)
    for g in report["gates"]:
        for f in g["findings"][:max_findings]:
            where = (f" (record {f['record_id']}" + (f", line {f['line']})" if "line" in f else ")")
                     if "record_id" in f else "")
            console.print(f"  {g['name']}: {f['message']}{where}", markup=False, highlight=False)
        if len(g["findings"]) > max_findings:
            console.print(f"  {g['name']}: ... {len(g['findings']) - max_findings} more findings")
    verdict = report["verdict"]
    console.print(f"verdict: [{_STYLE['pass' if verdict == 'pass' else 'fail']}]{verdict}[/]")
