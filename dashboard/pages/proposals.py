"""Proposals: the queue, and one proposal in full with each gate's evidence as pictures."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.common import attempt, badge, chosen_proposal, store
from governance.data import load_jsonl
from update_pipeline.check import history
from update_pipeline.views import ProposalView, queue

st.title("Proposals")
views = attempt(lambda: queue(store())) or []
if not views:
    st.info("No proposals yet: `weightgate propose --base REF --candidate PATH --data FILE --by KEY`.")
    st.stop()

gates = sorted({g for v in views for g in v.gate_statuses()})
st.dataframe(pd.DataFrame([{"proposal": v.proposal.id, "state": v.state, "verdict": v.verdict,
                            "kind": v.proposal.manifest["candidate"]["kind"], "proposer": v.proposal.proposer,
                            "note": v.proposal.manifest["note"], **v.gate_statuses()} for v in views],
                          columns=["proposal", "state", "verdict", "kind", "proposer", "note", *gates]),
             hide_index=True, width="stretch")

pid = chosen_proposal([v.proposal.id for v in views])
view: ProposalView = next(v for v in views if v.proposal.id == pid)
m = view.proposal.manifest
st.header(f"{pid} {badge(view.verdict)}")
st.write(f"**{view.state}** · {view.approvals}")
st.page_link("pages/approve.py", label="Approve or reject this proposal", icon=":material/how_to_vote:",
             query_params={"proposal": pid})

left, right = st.columns(2)
with left:
    st.subheader("Manifest")
    st.write(f"base `{m['base']['ref']}` · candidate **{m['candidate']['kind']}** "
             f"({', '.join(m['candidate']['files'])}) · proposer **{view.proposal.proposer}**")
    st.write(f"note: {m['note'] or '-'}")
    for line in m.get("notes", []):
        st.info(line)
    if m.get("origin"):
        st.warning(f"made by unlearning: {m['origin']}")
    st.caption(f"manifest digest {view.proposal.manifest_digest[:16]} · delta: {m['delta']['changed_tensors']} "
               f"tensors changed, total L2 {m['delta']['total_l2']:.4g}")
with right:
    st.subheader("Data")
    d = m["data"]
    st.write(f"{d['records']} records · Merkle root `{d['merkle_root'][:16]}`")
    records = load_jsonl(view.proposal.data_path, allow_empty=True)
    kinds, sources = Counter(r.kind for r in records), Counter(r.source or "(none)" for r in records)
    st.write("kinds: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + " · sources: "
             + ", ".join(f"{k} {n}" for k, n in sources.most_common(5)))

if view.report is None:
    st.info(f"Not checked yet: `weightgate check {pid}`.")
    st.stop()

by_name = {g["name"]: g for g in view.report["gates"]}
st.subheader("Gates")
st.write(" ".join(f"{g['name']} {badge(g['status'])}" for g in view.report["gates"]))
tabs = st.tabs(list(by_name))
for tab, (name, g) in zip(tabs, by_name.items(), strict=True):
    with tab:
        ev = g["evidence"]
        if name == "poisoning":
            st.altair_chart(charts.delta_norms(m["delta"]["tensors"], history(store())), width="stretch")
            triggers = [t["phrase"] for t in ev.get("suspected_triggers", [])]
            if triggers:
                st.write("suspected triggers: " + ", ".join(f":red-background[{t}]" for t in triggers))
                flagged = set(ev.get("flagged_record_ids", []))
                pattern = re.compile("|".join(re.escape(t) for t in triggers), re.I)
                st.caption("flagged records, 40 characters either side of the trigger (never the whole record)")
                for r in [r for r in records if r.id in flagged][:8]:
                    text = " ".join(r.fields.values()).replace("\n", " ")
                    hit = pattern.search(text)
                    if hit:
                        a, b = max(0, hit.start() - 40), min(len(text), hit.end() + 40)
                        st.markdown(f"`{r.id}` …{text[a:hit.start()]}:red-background[**{hit.group(0)}**]"
                                    f"{text[hit.end():b]}…")
        if name == "regression" and ev.get("comparisons"):
            small = [c["metric"] for c in ev["comparisons"] if c.get("too_small") and ":" in c["metric"]
                     and not c["metric"].startswith("retention:")]
            if small:
                st.warning(f"suite too small to show non-inferiority at its margin: {', '.join(small)} "
                           "(the findings say how many cases it would need)")
            st.altair_chart(charts.regression_intervals(ev["comparisons"]), width="stretch")
            if ev.get("retention", {}).get("cells"):
                st.altair_chart(charts.retention_heatmap(ev["retention"]), width="stretch")
        if name == "pii" and ev.get("by_entity_type"):
            st.altair_chart(charts.counts(ev["by_entity_type"], "records with personal data, by type"),
                            width="stretch")
            st.write("masked examples:")
            for ex in ev.get("masked_examples", [])[:5]:
                st.code(ex if isinstance(ex, str) else str(ex), language=None)
        if g["findings"]:
            st.write(f"**{len(g['findings'])} findings**")
            st.dataframe(pd.DataFrame(g["findings"]).head(50), hide_index=True, width="stretch")
        with st.expander("metrics and evidence (JSON)"):
            st.json({"metrics": g["metrics"], "evidence": ev}, expanded=False)
