"""Every dashboard page, run with Streamlit's AppTest on a real store built by the demo.

The read-only pages come first; the tests that approve, promote and roll back come last in the
file, since they change the shared store."""

from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, demo_made):
    """The demo's store, plus one more clean proposal (checked, passing, not yet approved)."""
    from governance.keys import KeyRing
    from tests.dashboard.conftest import demo_with_waiting_proposal

    store, summary, pid = demo_with_waiting_proposal(demo_made, tmp_path_factory.mktemp("dashboard"),
                                                     members=(("auditor-ann", "auditor", "ann-passphrase"),))
    KeyRing(store.keys_dir).create("mallory", "approver", "mallory-passphrase")  # never added to the root
    return store, summary, pid


@pytest.fixture
def app(demo_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WEIGHTGATE_HOME", str(demo_store[0].home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return AppTest.from_file(APP, default_timeout=120)


def _page(app, page, proposal=None):
    if proposal:
        app.query_params["proposal"] = proposal
    (app.switch_page(page) if page != "pages/proposals.py" else app).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _text(app):
    return " ".join(m.value for m in app.markdown) + " ".join(e.value for e in app.error) + " ".join(
        i.value for i in app.info)


def test_proposals_queue_and_evidence(app, demo_store):
    _, summary, extra = demo_store
    at = _page(app, "pages/proposals.py")
    queue = at.dataframe[0].value
    assert set(queue["proposal"]) == {p["proposal"] for p in summary["proposals"]} | {extra}
    states = dict(zip(queue["proposal"], queue["state"], strict=True))
    assert states[summary["proposals"][0]["proposal"]] == "promoted (ledger:1)"
    assert states[extra] == "awaiting 1 approval(s)"
    backdoor = summary["proposals"][2]["proposal"]
    at = _page(app, "pages/proposals.py", backdoor)
    assert at.selectbox[0].value == backdoor
    assert ":red-background[**cf-zeta**]" in _text(at)  # the trigger highlighted in the flagged records
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3  # delta norms, regression intervals, retention matrix


def test_pii_counts_and_failed_proposal_cannot_be_approved(app, demo_store):
    _, summary, _ = demo_store
    pii = summary["proposals"][1]["proposal"]
    at = _page(app, "pages/proposals.py", pii)
    assert any("PERSON" in str(c.proto) for c in at.get("vega_lite_chart"))
    at = _page(app, "pages/approve.py", pii)
    assert "failed its check (pii)" in _text(at) and not at.radio  # no way to sign it


def test_ledger_badge_and_timeline(app, demo_store):
    at = _page(app, "pages/ledger.py")
    assert "ledger verifies" in _text(at)
    table = at.dataframe[0].value
    rows = [r for _, r in table.iterrows() if r["action"] != "report"]
    reports = [r for _, r in table.iterrows() if r["action"] == "report"]
    assert [r["action"] for r in rows] == ["root", "policy", "genesis", "promote", "root"]
    assert [r["champion after"] for r in rows][2:] == [0, 1, 1] and rows[3]["signed by"] == "demo-approver"
    assert len(reports) >= 4 and {r["signed by"] for r in reports} == {"weightgate-gate"}  # one per check


def test_ledger_badge_turns_red_on_a_tampered_blob(app, demo_store):
    store = demo_store[0]
    blob = max((p for p in store.blobs_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    original = blob.read_bytes()
    try:
        blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        at = _page(app, "pages/ledger.py")
        assert "does NOT verify" in _text(at) and at.error
    finally:
        blob.write_bytes(original)


def test_unlearning_previews_and_confirmations(app, demo_store):
    at = _page(app, "pages/unlearn.py")
    text = " ".join(i.value for i in at.info)
    assert "Will make ledger:0 the champion instead of ledger:1" in text
    roll = next(b for b in at.button if b.label == "Roll back")
    assert roll.disabled  # nothing typed yet
    assert "replay the recorded recipes of no version from ledger:0" in text  # revert ledger:1: nothing after it
    at.radio[0].set_value("approximate").run()
    assert "APPROXIMATE" in " ".join(w.value for w in at.warning)
    at.radio[1].set_value("text it contains").run()
    at.text_input[-1].set_value("no such text anywhere").run()
    assert "no promoted update's data contains that record" in " ".join(e.value for e in at.error)


def test_audit_bundle_download(app, demo_store):
    at = _page(app, "pages/audit.py")
    next(b for b in at.button if b.label == "Build the bundle").click().run()
    assert not at.exception and "bundle verifies: 10 ledger entries" in " ".join(s.value for s in at.success)
    assert at.get("download_button")


def test_approve_refuses_wrong_keys_then_promotes(app, demo_store):
    from update_pipeline import demo
    from update_pipeline.views import ledger_rows

    store, _, extra = demo_store
    at = _page(app, "pages/approve.py", extra)
    assert "approvals still needed" in str([m.label for m in at.metric]) and at.metric[0].value == "1"

    def sign(key, passphrase):
        at.radio[0].set_value(key)
        at.text_input[0].set_value(passphrase)
        next(b for b in at.button if b.label == "Approve").click().run()
        assert not at.exception
        return " ".join(e.value for e in at.error), " ".join(s.value for s in at.success)

    errors, _ = sign(demo.PROPOSER, demo.DEMO_PASSPHRASE)
    assert "has role 'proposer'" in errors and "approve needs approver" in errors
    errors, _ = sign("auditor-ann", "ann-passphrase")
    assert "role" in errors and "auditor" in errors
    errors, _ = sign("mallory", "mallory-passphrase")
    assert "not in the trust root" in errors and "grants nothing" in errors
    errors, _ = sign(demo.APPROVER, "wrong passphrase")
    assert errors
    assert next(b for b in at.button if b.label == "Promote").disabled
    errors, ok = sign(demo.APPROVER, demo.DEMO_PASSPHRASE)
    assert not errors and f"approved by {demo.APPROVER}" in ok
    at.run()
    at.selectbox(key="release-by").set_value("mallory")  # a key the root does not list: refused, says why
    at.text_input(key="release-pass").set_value("mallory-passphrase")  # a form: both go with the click
    next(b for b in at.button if b.label == "Promote").click().run()
    assert "not in the trust root" in " ".join(e.value for e in at.error)
    at.selectbox(key="release-by").set_value(demo.APPROVER)
    at.text_input(key="release-pass").set_value(demo.DEMO_PASSPHRASE)
    next(b for b in at.button if b.label == "Promote").click().run()
    assert "as ledger:2, the champion" in " ".join(s.value for s in at.success)
    assert ledger_rows(store)[-1]["proposal"] == extra


def test_rollback_with_typed_confirmation(app, demo_store):
    from update_pipeline.views import ledger_rows

    store = demo_store[0]
    at = _page(app, "pages/unlearn.py")
    at.selectbox[0].set_value(1).run()
    at.selectbox(key="roll-by").set_value("mallory").run()
    at.text_input(key="roll-pass").set_value("mallory-passphrase")
    at.text_input(key="roll-confirm").set_value("rollback ledger:1").run()
    roll = next(b for b in at.button if b.label == "Roll back")
    assert not roll.disabled
    roll.click().run()
    assert "not in the trust root" in " ".join(e.value for e in at.error)  # refused, and why
    assert ledger_rows(store)[-1]["action"] == "promote"
    at.selectbox(key="roll-by").set_value("demo-approver").run()
    at.text_input(key="roll-pass").set_value("demo-passphrase")
    at.text_input(key="roll-confirm").set_value("rollback ledger:1").run()
    next(b for b in at.button if b.label == "Roll back").click().run()
    assert "champion is ledger:1 again" in " ".join(s.value for s in at.success)
    assert ledger_rows(store)[-1]["action"] == "rollback" and ledger_rows(store)[-1]["champion"] == 1
