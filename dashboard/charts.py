"""Pictures of gate evidence, as Altair charts (Streamlit draws them with st.altair_chart)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd


def delta_norms(tensors: dict[str, dict[str, Any]], history: list[dict[str, dict[str, Any]]]) -> alt.LayerChart:
    """The candidate's change per tensor (bars) against every earlier promoted update's (dots)."""
    rows = [{"tensor": n, "l2": t["l2"], "source": "candidate"} for n, t in tensors.items()]
    rows += [{"tensor": n, "l2": t["l2"], "source": f"earlier #{i + 1}"}
             for i, h in enumerate(history) for n, t in h.items() if n in tensors]
    df = pd.DataFrame(rows, columns=["tensor", "l2", "source"])
    x = alt.X("l2:Q", title="L2 norm of the change", scale=alt.Scale(type="symlog"))
    y = alt.Y("tensor:N", sort=list(tensors), title=None, axis=alt.Axis(labelLimit=320))
    bars = alt.Chart(df[df["source"] == "candidate"]).mark_bar(color="#4c78a8").encode(
        x=x, y=y, tooltip=["tensor", "l2"])
    dots = alt.Chart(df[df["source"] != "candidate"]).mark_tick(color="#e45756", thickness=2).encode(
        x=x, y=y, tooltip=["tensor", "source", "l2"])
    return (bars + dots).properties(height=alt.Step(16), title="change per tensor "
                                    "(bars: this update; red ticks: earlier promoted updates)")


def regression_intervals(comparisons: list[dict[str, Any]]) -> alt.LayerChart:
    """Mean change per metric with its confidence interval, and the drop the policy allows."""
    df = pd.DataFrame([{**c, "allowed": -c["max_drop"], "verdict": "regressed" if c["regressed"] else "ok"}
                       for c in comparisons])
    y = alt.Y("metric:N", sort=None, title=None, axis=alt.Axis(labelLimit=320))
    rule = alt.Chart(df).mark_rule(strokeWidth=3).encode(
        x=alt.X("lower:Q", title="change, candidate - base (95% interval)"), x2="upper:Q", y=y,
        color=alt.Color("verdict:N", scale=alt.Scale(domain=["ok", "regressed"], range=["#54a24b", "#e45756"])))
    point = alt.Chart(df).mark_point(filled=True, size=60, color="black").encode(
        x="diff:Q", y=y, tooltip=["metric", "base_mean", "candidate_mean", "diff", "lower", "upper", "max_drop"])
    allowed = alt.Chart(df).mark_tick(color="gray", thickness=2, size=16).encode(x="allowed:Q", y=y)
    return (rule + point + allowed).properties(height=alt.Step(26),
                                               title="regression: change per metric (grey tick: allowed drop)")


def retention_heatmap(retention: dict[str, Any]) -> alt.LayerChart:
    """Rows: model versions; columns: updates; colour: mean log-probability per token of the probe."""
    rows = [{"version": r, "update": c, "score": v} for r, cells in zip(retention["rows"], retention["cells"],
                                                                     strict=True)
            for c, v in zip(retention["columns"], cells, strict=True) if v is not None]
    df = pd.DataFrame(rows)
    base = alt.Chart(df).encode(x=alt.X("update:N", sort=retention["columns"], title="probe set of update"),
                                y=alt.Y("version:N", sort=retention["rows"], title="model version"))
    heat = base.mark_rect().encode(color=alt.Color("score:Q", scale=alt.Scale(scheme="viridis"),
                                                   title="log-prob / token"), tooltip=["version", "update", "score"])
    text = base.mark_text(color="white").encode(text=alt.Text("score:Q", format=".2f"))
    return (heat + text).properties(title="retention matrix", height=alt.Step(40))


def counts(by_type: dict[str, int], title: str) -> alt.Chart:
    df = pd.DataFrame([{"type": k, "records": v} for k, v in by_type.items()])
    return alt.Chart(df).mark_bar().encode(x=alt.X("records:Q"), y=alt.Y("type:N", sort="-x", title=None),
                                           tooltip=["type", "records"]).properties(title=title, height=alt.Step(24))
