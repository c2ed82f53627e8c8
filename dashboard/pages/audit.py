"""Audit export: the bundle `weightgate audit export` writes, verified, as one download."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from dashboard.common import attempt, store
from governance.audit_bundle import verify_bundle
from update_pipeline.audit import export

st.title("Audit export")
st.write("A bundle of every ledger entry (trust root versions included), the attestations it names (manifests, "
         "gate reports, approvals), the signed head and checksums, with a README. An auditor checks it offline "
         "with `weightgate audit verify DIR --root-fingerprint HEX`, with no access to this store, against the "
         "fingerprint you give them out of band.")

if st.button("Build the bundle", type="primary"):
    with tempfile.TemporaryDirectory() as tmp, st.spinner("exporting and verifying"):
        folder = attempt(lambda: export(store(), Path(tmp) / "bundle"))
        anchor = store().config().get("root_fingerprint")
        summary = attempt(lambda: verify_bundle(folder, root_fingerprint=anchor)) if folder else None
        if folder is not None and summary is not None:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(folder.rglob("*")):
                    if p.is_file():
                        z.write(p, Path("weightgate-audit") / p.relative_to(folder))
            st.session_state["bundle"] = buf.getvalue()
            st.session_state["bundle_summary"] = summary
if "bundle" in st.session_state:
    s = st.session_state["bundle_summary"]
    st.success(f"bundle verifies: {s['entries']} ledger entries, {s['attestations']} attestations, "
               f"champion ledger:{s['champion']}")
    st.write(f"Give the auditor this root fingerprint out of band: `{s['anchor']}`")
    st.download_button("Download weightgate-audit.zip", st.session_state["bundle"], "weightgate-audit.zip",
                       "application/zip", icon=":material/download:")
