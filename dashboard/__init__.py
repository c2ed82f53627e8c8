"""The approval dashboard (Streamlit): a thin face over update_pipeline. Not built yet."""
