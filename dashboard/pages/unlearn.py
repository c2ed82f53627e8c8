"""Rollback, revert, forget: each shows what will happen first and needs a typed confirmation."""

from __future__ import annotations

import streamlit as st

from dashboard.common import attempt, confirm, service, signer_fields, store
from governance.ledger import Ledger, versions
from update_pipeline.forget import plan_forget
from update_pipeline.replay import lineage
from update_pipeline.unlearn import plan_revert
from update_pipeline.views import ledger_rows

st.title("Rollback, revert, forget")
s = store()
entries = attempt(lambda: Ledger.of(s).entries()) or []
champion = entries[-1].predicate["champion"] if entries else None
if champion is None:
    st.info("The ledger holds no versions yet: there is nothing to roll back or unlearn.")
    st.stop()
made = versions(entries)
st.write(f"champion: **ledger:{champion}** · lineage {' → '.join(f'ledger:{v}' for v in lineage(entries))}")
notes = {r["version"]: r["note"] or r["action"] for r in ledger_rows(s) if r["action"] in ("genesis", "promote")}


roll, rev, forg = st.tabs(["Rollback", "Revert one update", "Forget a record"])
with roll:
    options = [v for v in sorted(made) if v != champion]
    if not options:
        st.info("Only one version exists.")
    else:
        to = st.selectbox("Roll back to", options, format_func=lambda v: f"ledger:{v} ({notes.get(v, '')})")
        st.info(f"Will make ledger:{to} the champion instead of ledger:{champion}: its weights are restored bit "
                "for bit (sha256 of every file checked), a signed rollback entry is appended, and the MLflow "
                "alias 'champion' moves to its registered version. Nothing is deleted. It is signed by an "
                "approver or operator key, as the trust root's rollback threshold requires.")
        by, passphrase = signer_fields("Sign with key", ("approver", "operator"), "roll",
                                      f"weightgate rollback --to {to} --by NAME --reason ...")
        reason = st.text_input("Reason (kept in the signed ledger entry)", key="roll-reason")
        ok = confirm(f"rollback ledger:{to}", "roll-confirm") and by is not None
        if st.button("Roll back", disabled=not ok, type="primary"):
            done = attempt(lambda: service(passphrase).rollback(to, by, reason))
            if done is not None:
                st.success(f"champion is ledger:{to} again (ledger entry {done[0].seq})")

with rev:
    chain = [v for v in lineage(entries) if v != 0]
    if not chain:
        st.info("No promoted update is in the champion's lineage.")
    else:
        version = st.selectbox("Update to revert", chain, format_func=lambda v: f"ledger:{v} ({notes.get(v, '')})")
        exact = st.radio("Method", ["exact", "approximate"], horizontal=True) == "exact"
        plan = attempt(lambda: plan_revert(s, version, exact))
        if plan is not None:
            (st.warning if plan.problem or not exact else st.info)(f"Plan: {plan.describe()}. The result is a new "
                                                                   "proposal: it must pass the gates and be approved.")
            by, passphrase = signer_fields("Sign the revert request with key (approver or operator; it also signs "
                                           "the proposal when it may propose)", ("approver", "operator"), "rev",
                                           f"weightgate revert {version} --by NAME --proposer PROPOSER")
            proposer, proposer_pass = (None, "") if by is None else signer_fields(
                "Proposer key for the replay proposal", ("proposer",), "rev-prop",
                f"weightgate revert {version} --by {by} --proposer PROPOSER")
            ok = confirm(f"revert ledger:{version}", "rev-confirm") and by is not None
            if st.button("Propose the revert", disabled=not ok or bool(plan.problem), type="primary"):
                with st.spinner("replaying recorded recipes" if exact else "subtracting the update's change"):
                    done = attempt(lambda: service(passphrase, {proposer: proposer_pass} if proposer else None)
                                   .revert(version, exact, by, proposer))
                if done is not None and done.proposal:
                    st.success(f"proposed {done.proposal.id} ({done.method}); check it, then approve it")

with forg:
    how = st.radio("Find the record by", ["record id", "text it contains"], horizontal=True)
    value = st.text_input("Record id" if how == "record id" else "Text")
    record_id, text = (value or None, None) if how == "record id" else (None, value or None)
    if value:
        plan = attempt(lambda: plan_forget(s, record_id, text))
        if plan is not None:
            (st.warning if plan.problem else st.info)(
                f"Plan: {plan.describe()}. The matching records are removed from the stored data (its old key is "
                "destroyed) and from every plaintext copy; the replay becomes a new proposal.")
            by, passphrase = signer_fields("Sign the forget with key (approver or operator; it also signs the "
                                           "replay proposal when it may propose)", ("approver", "operator"), "forget",
                                           "weightgate forget --record-id ID --by NAME --proposer PROPOSER")
            proposer, proposer_pass = (None, "") if by is None else signer_fields(
                "Proposer key for the replay proposal", ("proposer",), "forget-prop",
                f"weightgate forget --record-id ID --by {by} --proposer PROPOSER")
            ok = confirm("forget", "forget-confirm") and by is not None
            if st.button("Forget and propose the replay", disabled=not ok, type="primary"):
                with st.spinner("crypto-shredding and replaying"):
                    done = attempt(lambda: service(passphrase, {proposer: proposer_pass} if proposer else None)
                                   .forget(record_id, text, by, proposer))
                if done is not None:
                    st.success(f"removed {len(done.removed)} record(s) from ledger:{done.affected}; "
                               + (f"proposed {done.proposal.id}" if done.proposal else f"no replay: {done.problem}"))
