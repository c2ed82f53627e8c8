"""The dashboard in a real headless Chromium: approve a proposal with two approver keys, promote it,
then check the ledger and the MLflow alias from Python. Writes a screenshot of every page to
build/screenshots/ and prints how long each page took to render (not asserted)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
# (name, path, title, the last thing the page draws)
PAGES = [("proposals", "", "Proposals", "metrics and evidence (JSON)"),
         ("approve", "approve", "Approve or reject", "Promote"), ("ledger", "ledger", "Ledger", "MLflow links open"),
         ("unlearn", "unlearn", "Rollback, revert, forget", "Roll back"),
         ("audit", "audit", "Audit export", "Build the bundle")]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_approver_store(tmp_path_factory, demo_made):
    """The demo's store under a policy needing two approvals, with a clean proposal waiting for them."""
    from tests.dashboard.conftest import demo_with_waiting_proposal

    store, _, pid = demo_with_waiting_proposal(demo_made, tmp_path_factory.mktemp("e2e"), approvals=2,
                                               members=(("second-approver", "approver", "second-passphrase"),))
    return store, pid


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(two_approver_store):
    store, _ = two_approver_store
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    proc = subprocess.Popen([sys.executable, "-m", "update_pipeline.cli", "--home", str(store.home), "dashboard",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"dashboard did not start: {proc.stderr.read().decode()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail("Debian's chromium is needed: apt-get install -y chromium (.ci/run installs it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


_SETTLED = """() => {
    const shown = sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null);
    return shown('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]').length === 0
        && shown('[data-testid="stVegaLiteChart"]').every(c => c.querySelector('canvas, svg'));
}"""


def _open(page, url, title, last=None):
    """Seconds from navigation until the page is drawn: title and last element shown, no skeletons,
    charts drawn."""
    start = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    if last:
        page.get_by_text(last).first.wait_for(timeout=60_000)
    page.wait_for_function(_SETTLED, timeout=60_000)
    return time.perf_counter() - start


def _wait_text(page, text):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:  # a loaded 2-core machine can take a while to promote; say what the page shows when it never comes
        page.get_by_text(text).first.wait_for(timeout=120_000)
    except PlaywrightTimeout:
        raise AssertionError(f"{text!r} never shown; the page ends: {page.inner_text('body')[-600:]!r}") from None


def test_every_page_renders_with_screenshots(two_approver_store, server, browser):
    """First, while the proposal still waits for its approvals."""
    from update_pipeline.views import queue

    store, pid = two_approver_store
    forgetting = next(v.proposal.id for v in queue(store) if v.proposal.manifest["note"] == "demo: forgetting")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 2400})  # the app scrolls inside: a tall window
    _open(page, f"{server}/audit", "Audit export")  # the browser's first visit loads the app's scripts: not timed
    timings = {}
    for name, path, title, last in PAGES:
        query = {"proposals": f"?proposal={forgetting}", "approve": f"?proposal={pid}"}.get(name, "")
        timings[name] = _open(page, f"{server}/{path}{query}", title, last)
        if name == "proposals":  # a failed update's evidence: the regression tab's pictures
            page.get_by_role("tab", name="regression").click()
            page.wait_for_function(_SETTLED, timeout=60_000)
        height = page.evaluate("document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": min(2400, height + 120)})
        page.screenshot(path=str(SHOTS / f"dashboard-{name}.png"))
        page.set_viewport_size({"width": 1400, "height": 2400})
        assert (SHOTS / f"dashboard-{name}.png").stat().st_size > 10_000
    print("\npage render times (s, browser warm): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


def test_approve_twice_promote_and_check_from_python(two_approver_store, server, browser):
    from mlflow import MlflowClient

    from update_pipeline import demo
    from update_pipeline.views import ledger_rows

    store, pid = two_approver_store
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _open(page, f"{server}/approve?proposal={pid}", "Approve or reject")
    for key, passphrase in ((demo.APPROVER, demo.DEMO_PASSPHRASE), ("second-approver", "second-passphrase")):
        page.get_by_text(f"{key} (approver)", exact=True).click()
        page.get_by_label("Passphrase").first.fill(passphrase)
        page.get_by_role("button", name="Approve", exact=True).click()
        _wait_text(page, f"approved by {key}")
    _wait_text(page, "approvals 2/2")  # the rerun after the second approval is drawn: inputs are not reset now
    _wait_text(page, "Release with key")  # the releaser signs the promotion (first choice: demo-approver)
    page.wait_for_function(_SETTLED, timeout=60_000)  # the run is over: nothing redraws the form after the fill
    for attempt in range(2):  # under load a late rerun can still redraw the form: the refusal says so, type again
        field = page.get_by_label("Passphrase").last
        field.fill(demo.DEMO_PASSPHRASE)  # in the release form: sent with the click
        assert field.input_value() == demo.DEMO_PASSPHRASE
        page.get_by_role("button", name="Promote").click()
        done = page.get_by_text("as ledger:2, the champion").first
        refused = page.get_by_text("no passphrase").first
        done.or_(refused).first.wait_for(timeout=120_000)
        if done.is_visible() or attempt:
            break
    _wait_text(page, "as ledger:2, the champion")

    last = ledger_rows(store)[-1]
    assert last["action"] == "promote" and last["proposal"] == pid and last["champion"] == 2
    assert sorted(last["approvers"]) == sorted([demo.APPROVER, "second-approver"])
    assert last["signed_by"] == [demo.APPROVER]
    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())
    mv = client.get_model_version_by_alias(store.model_name, "champion")
    assert mv.tags["weightgate.ledger_version"] == "2"
