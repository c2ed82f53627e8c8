"""Serve the dashboard from this process, warmed up first: the pages' modules imported and the MLflow
store opened before the first visitor, so no page pays for a cold start.
``python -m dashboard.serve --port N`` (what ``weightgate dashboard`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def warm() -> None:
    import dashboard.charts  # noqa: F401  (altair, pandas)
    from dashboard.common import store
    from governance.lineage import Lineage
    from update_pipeline import audit, check, unlearn, views  # noqa: F401

    s = store()
    views.queue(s)
    Lineage(s.tracking_uri(), s.artifacts_dir).registered_versions(s.model_name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8501)
    port = ap.parse_args().port
    from streamlit.web import bootstrap

    warm()
    flags = {"server.address": "127.0.0.1", "server.port": port, "server.headless": True,
             "browser.gatherUsageStats": False, "client.toolbarMode": "viewer"}
    bootstrap.load_config_options(flag_options=flags)
    bootstrap.run(str(APP), False, [], flags)


if __name__ == "__main__":
    main()
