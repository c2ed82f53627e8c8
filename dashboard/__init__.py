"""The approval dashboard (Streamlit): a thin face over update_pipeline and governance.

``weightgate dashboard`` runs ``dashboard/app.py``; each page under ``dashboard/pages/`` calls the
same functions the command line does (views, decide, promote, rollback, revert, forget, verify,
export) and draws their results; ``dashboard/charts.py`` turns reports into pictures.
"""
