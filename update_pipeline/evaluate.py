"""``weightgate eval``: a model's scores on regression suites, and optionally the paired comparison
with another model, with the thresholds of the policy's regression gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audits.evaluation import METRICS, CaseScore, model_digest, score_suite, values
from audits.paired import adjust, compare
from audits.regression import RegressionConfig, case_clusters
from audits.suites import load_suite
from governance.store import Store
from update_pipeline import refs
from update_pipeline.hashing import sha256_files
from update_pipeline.weights import WEIGHT_SUFFIX, model_files


def _digest(folder: Path) -> str:
    files = [p for p in model_files(folder) if p.name.endswith(WEIGHT_SUFFIX)]
    return model_digest({str(p.relative_to(folder)): d for p, d in sha256_files(files).items()})


def _summary(scores: list[CaseScore]) -> dict[str, dict[str, float]]:
    out = {}
    for metric in METRICS:
        vals = values(scores, metric)
        if vals:
            out[metric] = {"mean": round(sum(vals.values()) / len(vals), 4), "cases": len(vals)}
    return out


def evaluate(store: Store, model: str, against: str | None, suites: list[str], cfg: RegressionConfig,
             tracking_uri: str | None = None, triggers: list[str] | None = None) -> dict[str, Any]:
    """Scores of `model` (and `against`) on each suite; with `against`, per-metric comparisons."""
    folders = {model: refs.resolve(model, store, tracking_uri)}
    if against is not None:
        folders[against] = refs.resolve(against, store, tracking_uri)
    digests = {ref: _digest(folder) for ref, folder in folders.items()}
    cache = store.cache_dir / "eval"
    out: dict[str, Any] = {"model": model, "against": against, "suites": [], "regressed": []}
    for name in suites:
        suite = load_suite(name, Path.cwd())  # a path typed on the command line
        words = list(triggers or cfg.robustness_triggers)
        scores = {ref: score_suite(folder, suite, words, batch=cfg.batch, cache_dir=cache, digest=digests[ref])
                  for ref, folder in folders.items()}
        entry: dict[str, Any] = {"name": suite.name, "digest": suite.digest, "cases": len(suite.cases),
                                 "metrics": _summary(scores[model]),
                                 "failed_cases": [s.id for s in scores[model] if s.passed is False]}
        if against is not None:
            entry["against_metrics"] = _summary(scores[against])
            comps = adjust([compare(f"{suite.name}:{m}", values(scores[against], m), values(scores[model], m),
                                    max_drop=cfg.max_drop[m], confidence=cfg.confidence, test=cfg.test_of(m),
                                    clusters=case_clusters(suite, values(scores[model], m)),
                                    binary=what == "passed", power=cfg.power)
                            for m, (_, what) in METRICS.items()
                            if set(values(scores[against], m)) & set(values(scores[model], m))])
            entry["comparisons"] = [c.as_dict() for c in comps]
            out["regressed"] += [c.metric for c in comps if c.regressed]
        out["suites"].append(entry)
    return out


def render(result: dict[str, Any]) -> None:
    import shutil

    from rich.console import Console
    from rich.table import Table

    console = Console(width=shutil.get_terminal_size((120, 24)).columns)
    for s in result["suites"]:
        table = Table(title=f"suite {s['name']} ({s['cases']} cases): {result['model']}"
                      + (f" against {result['against']}" if result["against"] else ""))
        for col in ("metric", "cases", "model", *(["against", "change", "interval", ""] if result["against"] else [])):
            table.add_column(col, no_wrap=True)
        comps = {c["metric"].split(":", 1)[1]: c for c in s.get("comparisons", [])}
        for metric, m in s["metrics"].items():
            row = [metric, str(m["cases"]), f"{m['mean']:.3f}"]
            c = comps.get(metric)
            if result["against"]:
                row += ([f"{c['base_mean']:.3f}", f"{c['diff']:+.3f}", f"[{c['lower']:+.3f}, {c['upper']:+.3f}]",
                         "[red]regressed[/]" if c["regressed"] else "[green]ok[/]"] if c else ["", "", "", ""])
            table.add_row(*row)
        console.print(table)
        if s["failed_cases"]:
            shown = ", ".join(s["failed_cases"][:10])
            console.print(f"failed cases ({len(s['failed_cases'])}): {shown}"
                          + (" ..." if len(s["failed_cases"]) > 10 else ""), markup=False)
