"""Data validation gate, run with Great Expectations.

Expectations over one row per record: allowed record kinds (schema), empty or
over-long text fields, exact duplicate records, near-duplicate flooding, and
allowed sources. Evidence names record ids and lines, never record text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field

from audits._near_dup import clusters
from audits.base import Gate, GateConfig, GateContext, Outcome
from governance.data import TEXT_FIELDS
from governance.records import Finding

_MAX_FINDINGS = 50


class DataValidationConfig(GateConfig):
    record_kinds: list[Literal["text", "prompt_completion"]] = ["text", "prompt_completion"]
    min_field_chars: int = Field(1, ge=0)
    max_field_chars: int = Field(8000, ge=1)
    max_duplicate_fraction: float = Field(0.0, ge=0, le=1)
    near_duplicate_similarity: float = Field(0.8, gt=0, le=1)
    max_near_duplicate_fraction: float = Field(0.05, gt=0, le=1, description="largest cluster's share")
    min_flood_size: int = Field(10, ge=2, description="smaller clusters are never a flood")
    allowed_sources: list[str] | None = None


class DataValidationGate(Gate):
    name = "data_validation"
    Config = DataValidationConfig
    config: DataValidationConfig

    def _frame(self, ctx: GateContext) -> Any:
        import pandas as pd

        recs = ctx.records
        labels = clusters([" ".join(r.fields.values()) for r in recs], self.config.near_duplicate_similarity)
        sizes = Counter(labels)
        n = len(recs)
        flood = {lab for lab, s in sizes.items()
                 if s >= self.config.min_flood_size and s / n > self.config.max_near_duplicate_fraction}
        rows = []
        for r, lab in zip(recs, labels, strict=True):
            row = {"id": r.id, "line": r.line, "kind": r.kind, "content_hash": r.content_hash,
                   "source": r.source if r.source is not None else "(none)",
                   "near_dup_cluster_size": sizes[lab], "flooded": lab in flood}
            row.update({f"{f}_chars": (len(r.fields[f].strip()) if f in r.fields else None) for f in TEXT_FIELDS})
            rows.append(row)
        return pd.DataFrame(rows)

    def _suite(self, frame: Any) -> list[tuple[str, Any]]:
        import great_expectations as gx

        c, e = self.config, gx.expectations
        checks = [("record kind not allowed", e.ExpectColumnValuesToBeInSet(column="kind", value_set=c.record_kinds))]
        for f in TEXT_FIELDS:
            if frame[f"{f}_chars"].notna().any():
                checks.append((f"'{f}' empty or longer than {c.max_field_chars} characters",
                               e.ExpectColumnValuesToBeBetween(column=f"{f}_chars", min_value=c.min_field_chars,
                                                               max_value=c.max_field_chars)))
        checks.append(("duplicate record", e.ExpectColumnValuesToBeUnique(
            column="content_hash", mostly=max(1e-9, 1.0 - c.max_duplicate_fraction))))
        checks.append(("near-duplicate flooding", e.ExpectColumnValuesToBeInSet(column="flooded", value_set=[False])))
        if c.allowed_sources is not None:
            checks.append(("source not allowed", e.ExpectColumnValuesToBeInSet(
                column="source", value_set=c.allowed_sources)))
        return checks

    def evaluate(self, ctx: GateContext) -> Outcome:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        if not ctx.records:
            return Outcome(True, {"records": 0.0}, {"note": "no records to validate"})
        frame = self._frame(ctx)
        gctx = gx.get_context(mode="ephemeral")
        gctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch = (gctx.data_sources.add_pandas("weightgate").add_dataframe_asset("records")
                 .add_batch_definition_whole_dataframe("all"))
        checks = self._suite(frame)
        suite = gctx.suites.add(gx.ExpectationSuite(name="data_validation"))
        for label, exp in checks:
            exp.meta = {"label": label}
            suite.add_expectation(exp)
        vd = gctx.validation_definitions.add(gx.ValidationDefinition(name="data_validation", data=batch, suite=suite))
        res = vd.run(batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"})
        by_type = {r.expectation_config.meta["label"]: r for r in res.results}
        if set(by_type) != {label for label, _ in checks}:
            raise RuntimeError("Great Expectations did not report on every expectation")
        findings: list[Finding] = []
        failed: list[str] = []
        metrics: dict[str, float] = {"records": float(len(frame))}
        for label, r in by_type.items():
            bad = r.result.get("unexpected_index_list") or []
            metrics[_metric(label)] = float(len(bad))
            if not r.success:
                failed.append(label)
            for i in bad[:_MAX_FINDINGS]:
                findings.append(Finding(f"{label}", "error" if not r.success else "warning",
                                        str(frame.at[i, "id"]), int(frame.at[i, "line"])))
        metrics["largest_near_duplicate_cluster"] = float(frame["near_dup_cluster_size"].max())
        evidence = {"failed_expectations": failed, "expectations": list(by_type),
                    "great_expectations_success": bool(res.success)}
        return Outcome(not failed, metrics, evidence, tuple(findings))


def _metric(label: str) -> str:
    return "unexpected." + "".join(ch if ch.isalnum() else "_" for ch in label.split(" or ")[0]).strip("_")
