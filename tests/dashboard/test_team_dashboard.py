"""The dashboard shared by a team: served from a home that holds no private key, on the team's servers. It
shows the queue and the ledger, and the approvals and promotions members sign with their own CLI."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from governance.store import Store
from tests.update_pipeline.test_crash import _env
from update_pipeline import world
from update_pipeline.check import check
from update_pipeline.intake import propose

pytestmark = pytest.mark.servers
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _cli(home, *args):
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", *args], capture_output=True, text=True,
                       timeout=300, env=_env(home))
    assert r.returncode == 0, r.stderr
    return r


def _run(at, page, proposal):
    at.query_params["proposal"] = proposal
    (at.switch_page(page) if page != "pages/proposals.py" else at).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_shared_dashboard_shows_what_members_sign_with_their_cli(team_store, base_model, full_candidate,
                                                                    update_data, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    config = team_store.config()
    viewer = Store.locate(tmp_path / "viewer")  # the dashboard's server: configuration, caches, no key
    viewer.init(world.policy(tmp_path / "viewer-policy.yaml"), config["tracking_uri"], config["ledger_url"],
                config["blobs"], config["model_name"])
    p = propose(team_store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    digest = hashlib.sha256(check(team_store, p.id).envelope.read_bytes()).hexdigest()
    monkeypatch.setenv("WEIGHTGATE_HOME", str(viewer.home))
    at = _run(AppTest.from_file(APP, default_timeout=120), "pages/approve.py", p.id)
    assert at.metric, [e.value for e in (*at.error, *at.info, *at.warning, *at.markdown)]
    assert at.metric[0].value == "1" and not at.radio and not at.text_input  # nothing to unlock here
    info = " ".join(i.value for i in at.info)
    assert f"weightgate approve {p.id} --by NAME --report {digest[:16]}" in info

    _cli(team_store.home, "approve", p.id, "--by", "bob", "--report", digest[:16])  # bob, on his machine
    at = _run(at, "pages/approve.py", p.id)
    assert at.metric[0].value == "0" and "approved by: bob" in " ".join(m.value for m in at.markdown)
    assert f"weightgate promote {p.id} --by NAME" in " ".join(i.value for i in at.info)

    _cli(team_store.home, "promote", p.id, "--by", "olga")
    at = _run(at, "pages/ledger.py", p.id)
    text = " ".join(m.value for m in at.markdown)
    assert "ledger verifies" in text and "champion **ledger:1**" in text
    assert not list(viewer.keys_dir.glob("*.key"))
