"""Approve or reject: signed exactly as `weightgate approve` signs; promote once the threshold is met."""

from __future__ import annotations

import streamlit as st

from dashboard.common import (
    attempt,
    badge,
    chosen_proposal,
    keys,
    service,
    sign_elsewhere,
    signer_fields,
    store,
)
from update_pipeline.views import proposal_view, queue

st.title("Approve or reject")
views = [v for v in (attempt(lambda: queue(store())) or []) if v.promoted_as is None]
if not views:
    st.info("Nothing is waiting: every proposal is promoted, or none was made.")
    st.stop()
pid = chosen_proposal([v.proposal.id for v in views])
view = proposal_view(store(), pid)
st.write(f"{badge(view.verdict)} **{view.state}** · proposed by **{view.proposal.proposer}** · "
         f"{view.proposal.manifest['note'] or 'no note'}")
st.page_link("pages/proposals.py", label="See the gates' evidence", icon=":material/fact_check:",
             query_params={"proposal": pid})

if view.report is None:
    st.error(f"{pid} has not been checked: run `weightgate check {pid}` first. It cannot be approved.")
    st.stop()
if view.report["verdict"] != "pass":
    st.error(f"{pid} failed its check ({', '.join(view.report['failed_gates'])}): it cannot be approved.")
    st.stop()

signed, needed = ", ".join(view.approved_by) or "nobody yet", view.missing
st.metric("approvals still needed", needed)
st.write(f"approved by: {signed}")
# the report this page showed is the one a decision signs, even if a newer one lands meanwhile
shown = st.session_state.setdefault("shown_reports", {})
shown.setdefault(pid, view.report_digest)
st.caption(f"{view.approvals} · a decision here signs report {shown[pid][:16]}")

roles = {name: role + (", proposed this update" if name == view.proposal.proposer else "")
         for name, role in keys().items()}  # roles from the trust root in force; the gate key is left out
if roles:
    with st.form("decide", clear_on_submit=True):
        by = st.radio("Sign with key", list(roles), horizontal=True, format_func=lambda n: f"{n} ({roles[n]})")
        passphrase = st.text_input("Passphrase", type="password")
        comment = st.text_input("Comment (kept in the signed statement; a reason is required to reject)")
        approve_clicked = st.form_submit_button("Approve", type="primary")
        reject_clicked = st.form_submit_button("Reject")
    if approve_clicked or reject_clicked:
        decision = "approve" if approve_clicked else "reject"
        if decision == "reject" and not comment.strip():
            st.error("a rejection needs a reason")
        else:
            status = attempt(lambda: service(passphrase).decide(pid, by, decision, comment, shown[pid]))
            if status is None and shown[pid] != view.report_digest:
                shown[pid] = view.report_digest  # show the newest report; the next decision signs it
                st.warning("A newer report was made since this page showed its report: read it, then decide.")
            if status is not None:
                st.success(f"{decision}d by {by}: {status.describe()}")
                view = proposal_view(store(), pid)
else:
    sign_elsewhere(f"weightgate approve {pid} --by NAME --report {shown[pid][:16]}")

if view.met:
    st.subheader("Promote")
    if not keys("operator", "approver"):
        sign_elsewhere(f"weightgate promote {pid} --by NAME")
    else:
        with st.form("release"):  # key and passphrase go with the click, never a half-committed field
            releaser, release_pass = signer_fields("Release with key (operator or approver)",
                                                   ("operator", "approver"), "release",
                                                   f"weightgate promote {pid} --by NAME")
            clicked = st.form_submit_button("Promote", type="primary")
        if clicked:
            with st.spinner("storing weights, appending to the ledger, registering in MLflow"):
                done = attempt(lambda: service(release_pass).promote(pid, releaser))
            if done is not None:
                st.success(f"promoted {pid} as ledger:{done.version}, the champion")
                st.page_link("pages/ledger.py", label="See the ledger", icon=":material/timeline:")
else:
    st.button("Promote", disabled=True, help=view.approvals)
