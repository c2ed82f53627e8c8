"""kill -9 during forget and revert, at many points: the ledger verifies, a rerun completes, and after a
forget no plaintext of the record is anywhere under the store."""

import shutil
import subprocess
import sys
import time

import pytest

from governance.data import load_jsonl
from governance.errors import UsageError
from governance.history import pending_forget
from governance.ledger import Ledger
from tests.conftest import copy_store
from tests.update_pipeline.test_crash import _env, _verify_after_kill, kill_after, started
from tests.update_pipeline.test_forget import leaks
from tests.update_pipeline.test_ledger_flow import promote_chain
from update_pipeline.service import Weightgate
from update_pipeline.unlearn import proposal_for

POINTS = 9


def _cli(home, *args):
    return [sys.executable, "-m", "update_pipeline.cli", "--home", str(home), *args]


def _kill_points(store, tmp_path, args, after):
    """Run `args` to the end once, then kill -9 copies of the store at POINTS moments spread over the work
    after the plan is printed; `after(store)` checks each."""
    from governance.store import Store

    full = tmp_path / "full"
    copy_store(store.home, full)
    proc = subprocess.Popen(_cli(full, *args), env=_env(full), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started(proc, b"plan:")
    start = time.monotonic()
    assert proc.wait(timeout=300) == 0
    work = time.monotonic() - start
    shutil.rmtree(full)
    for i in range(POINTS):
        home = tmp_path / f"kill{i}"
        copy_store(store.home, home)
        proc = subprocess.Popen(_cli(home, *args), env=_env(home), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        started(proc, b"plan:")
        kill_after(proc, work * i / (POINTS - 1))
        s = Store.locate(home)
        _verify_after_kill(s)
        after(s)
        shutil.rmtree(home)
    print(f"\n{args[0]}: {POINTS} kill points over {work:.1f}s of work")


@pytest.mark.slow
def test_kill_forget_at_many_points(store, base_model, tmp_path):
    promote_chain(store, base_model, tmp_path, n=2)
    secret = next(iter(load_jsonl(tmp_path / "u1.jsonl")[0].fields.values()))
    finished = []

    def after(s):
        svc = Weightgate(s)
        entries = Ledger.of(s).entries()
        began = any(e.predicate["action"] == "forget" for e in entries)
        if began and pending_forget(entries) is None:  # it had finished: a rerun finds nothing left to forget
            with pytest.raises(UsageError, match="no promoted update's data contains that record"):
                svc.forget(None, secret, by="olga", proposer="alice")
        else:  # resume, or start over
            done = svc.forget(None, None if began else secret, by="olga", proposer="alice")
            assert done.tombstoned == [2]
        entries = Ledger.of(s).entries()
        intent = next(e for e in entries if e.predicate["action"] == "forget")
        assert pending_forget(entries) is None and entries[-1].predicate["action"] == "forget_done"
        assert proposal_for(s, entries, intent.seq) is not None
        assert sum(e.predicate["action"] == "forget" for e in entries) == 1
        assert leaks(s.home, secret) == []
        assert Weightgate(s).verify()["champion"] == 1
        finished.append(began)

    _kill_points(store, tmp_path, ["forget", "--text", secret, "--by", "olga", "--proposer", "alice"], after)
    assert any(finished) and not all(finished)  # kills before and after the intent


@pytest.mark.slow
def test_kill_revert_at_many_points(store, base_model, tmp_path):
    promote_chain(store, base_model, tmp_path, n=2)
    requested = []

    def after(s):
        before = Ledger.of(s).entries()
        began = before[-1].predicate["action"] == "revert"
        done = Weightgate(s).revert(1, True, by="olga", proposer="alice")
        entries = Ledger.of(s).entries()
        assert sum(e.predicate["action"] == "revert" for e in entries) == 1  # the request is reused
        assert proposal_for(s, entries, entries[-1].seq).id == done.proposal.id
        assert Weightgate(s).verify()["champion"] == 2
        requested.append(began)

    _kill_points(store, tmp_path, ["revert", "1", "--exact", "--by", "olga", "--proposer", "alice"], after)
    assert any(requested) and not all(requested)
