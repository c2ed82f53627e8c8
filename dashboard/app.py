"""The weightgate dashboard: `weightgate dashboard` runs this with Streamlit on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts only this folder on the path
    sys.path.insert(0, str(ROOT))

st.set_page_config(page_title="weightgate", page_icon=":material/verified_user:", layout="wide")
pages = [st.Page("pages/proposals.py", title="Proposals", icon=":material/fact_check:", default=True),
         st.Page("pages/approve.py", title="Approve", icon=":material/how_to_vote:"),
         st.Page("pages/ledger.py", title="Ledger", icon=":material/timeline:"),
         st.Page("pages/unlearn.py", title="Rollback and unlearning", icon=":material/undo:"),
         st.Page("pages/audit.py", title="Audit export", icon=":material/download:")]
st.navigation(pages).run()
