"""Ledger: the verification badge (the same verify as `weightgate ledger verify`) and the timeline."""

from __future__ import annotations

import datetime
import os

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.common import attempt, store
from governance.errors import WeightgateError
from governance.lineage import Lineage
from update_pipeline.audit import verify_store
from update_pipeline.promote import trusted
from update_pipeline.views import ledger_rows

st.title("Ledger")
s = store()
try:
    summary = verify_store(s)
    st.markdown(f":green-badge[:material/verified: ledger verifies] {summary['entries']} entries, "
                f"{summary['blobs']} blobs checked; champion **ledger:{summary['champion']}**; trust root "
                f"v{summary['root_version']} `{summary['root_fingerprint'][:16]}`; witnesses: "
                f"{', '.join(summary['witnesses'])}")
except WeightgateError as exc:
    st.markdown(":red-badge[:material/gpp_bad: ledger does NOT verify]")
    st.error(f"{type(exc).__name__}: {exc}")

rows = attempt(lambda: ledger_rows(s)) or []
if not rows:
    st.info("The ledger is empty: promote a proposal to start it.")
    st.stop()

uri = s.tracking_uri()
ui = os.environ.get("WEIGHTGATE_MLFLOW_UI") or (uri if uri.startswith("http") else "http://127.0.0.1:5000")
lineage = Lineage(uri, s.artifacts_dir)
registered = attempt(lambda: lineage.registered_versions(s.model_name)) or {}
proposals = trusted(s)[3]
exp = lineage.client().get_experiment_by_name("weightgate/proposals")


def report_of(pid: str | None) -> str:
    """The verdict of the signed report the promotion was approved on."""
    if not pid:
        return ""
    try:
        latest = proposals.latest_report(proposals.load(pid, redacted_ok=True))
    except WeightgateError as exc:
        return f"unreadable: {exc}"
    if latest is None:
        return ""
    report = latest[1]
    return f"{report['verdict']} ({len(report['gates'])} gates)"


def run_link(pid: str | None) -> str | None:
    if not pid or exp is None:
        return None
    try:
        run = proposals.load(pid, redacted_ok=True).lineage().get("run_id")
    except WeightgateError:
        return None
    return f"{ui}/#/experiments/{exp.experiment_id}/runs/{run}" if run else None


table = pd.DataFrame([{
    "seq": r["seq"], "when": datetime.datetime.fromtimestamp(r["created"]).strftime("%Y-%m-%d %H:%M:%S"),
    "action": r["action"], "version": r["version"],
    "champion after": r["champion"],
    "proposal": r["proposal"] or "", "kind": r["kind"] or "", "approvers": ", ".join(r["approvers"]),
    "signed by": ", ".join(r["signed_by"]),
    "note": r["note"] or "", "report": report_of(r["proposal"]), "mlflow run": run_link(r["proposal"]),
    "registered version": (f"{ui}/#/models/{s.model_name}/versions/{registered[r['version']]}"
                           if r["version"] in registered and r["action"] in ("promote", "genesis") else None),
    "entry digest": r["digest"][:16]} for r in rows])
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "mlflow run": st.column_config.LinkColumn(display_text="run"),
    "registered version": st.column_config.LinkColumn(display_text=r"/models/.*/versions/(\d+)$")})
st.caption(f"MLflow links open {ui}; for the embedded store start `mlflow ui --backend-store-uri {uri}`.")

chart = alt.Chart(table).mark_line(point=True, interpolate="step-after").encode(
    x=alt.X("seq:O", title="ledger entry", axis=alt.Axis(labelAngle=0)),
    y=alt.Y("champion after:Q", title="champion version", axis=alt.Axis(tickMinStep=1, format="d")),
    tooltip=["seq", "action", "version", "proposal", "approvers"])
st.altair_chart(chart.properties(title="champion over time", height=220), width="stretch")
