"""kill -9 during promotion, at many points: the ledger verifies and the champion is old or new."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from governance.data import load_jsonl
from governance.ledger import Ledger, champion
from tests.conftest import PASSPHRASES, write_jsonl
from tests.update_pipeline.test_ledger_flow import promote_chain
from update_pipeline import refs, world
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate
from update_pipeline.train import train_update

POINTS = 10


def _env(home):
    env = {**os.environ, "WEIGHTGATE_HOME": str(home)}
    env.update({f"WEIGHTGATE_PASSPHRASE_{n.upper()}": p for n, p in PASSPHRASES.items()})
    return env


# the CLI, with its libraries imported first and "ready" said on stderr then: kill points are spread over the
# promotion's work, not over Python's imports
READY = ("import sys, mlflow, safetensors, torch, transformers, update_pipeline.promote\n"
         "print('ready', file=sys.stderr, flush=True)\n"
         "from update_pipeline.cli import main\n"
         "sys.argv = ['weightgate', *sys.argv[1:]]\n"
         "main()")


def _promote_cmd(pid):
    return [sys.executable, "-c", READY, "promote", pid, "--by", "olga"]


def started(proc, first=b"ready"):
    """Wait for the line starting with `first` on the process's stderr (its imports done, its work about to
    start), then keep draining stderr so output never blocks it."""
    import threading

    line = proc.stderr.readline()
    assert line.startswith(first), line
    threading.Thread(target=proc.stderr.read, daemon=True).start()


def _champion(store):
    return champion(Ledger.of(store).entries())


def kill_after(proc, delay, sig=signal.SIGKILL):
    """Sleep `delay` seconds, then send `sig` (kill -9) to the process and everything it started."""
    time.sleep(delay)
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    return proc.wait(timeout=60)


def _verify_after_kill(s):
    """The ledger and every blob it names verify. MLflow may be one write behind (killed between the append
    and the registry): verify says so, and 'ledger checkpoint' brings it in line."""
    from governance.errors import VerificationError

    try:
        verify_store(s)
    except VerificationError as exc:
        assert "is behind the ledger" in str(exc), exc
        Weightgate(s).checkpoint(["olga"])
        verify_store(s)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.servers)])
def test_kill_promotion_at_many_points(backend, request, base_model, tmp_path):
    """With the ledger in SQLite beside the store, or on a PostgreSQL server (where a killed writer's row lock
    goes with its connection)."""
    from governance.store import Store
    from tests.conftest import pg_home
    from update_pipeline import scratch

    store = request.getfixturevalue("store" if backend == "sqlite" else "pg_store")
    points = POINTS if backend == "sqlite" else 7

    def copy_of(home, i):
        if backend == "sqlite":
            shutil.copytree(store.home, home)
        else:
            source = store.config()["ledger_url"].rsplit("/", 1)[1]
            pg_home(request.getfixturevalue("pg"), store.home, home, f"{source}_kill{i}", source)

    promote_chain(store, base_model, tmp_path, n=1)
    data = write_jsonl(tmp_path / "next.jsonl", world.fact_records(world.countries(n=30)[27:], "curated"))
    out = tmp_path / "next"
    train_update(refs.resolve("ledger:champion", store), "ledger:champion", load_jsonl(data), out, epochs=1)
    pid = propose(store, "ledger:champion", out, data, "alice", "alice-passphrase").id
    check(store, pid)
    Weightgate(store).approve(pid, "bob", "")

    full = tmp_path / "full"
    copy_of(full, "full")
    proc = subprocess.Popen(_promote_cmd(pid), env=_env(full), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started(proc)
    start = time.monotonic()
    assert proc.wait(timeout=300) == 0
    total = time.monotonic() - start
    assert _champion(Store.locate(full)) == 2

    # kill -9 spread over the whole promotion; on SQLite also SIGTERM at three moments (a caught SIGTERM
    # unwinds: its working copy is gone before it exits, with 143)
    kills = [(signal.SIGKILL, total * i / (points - 1)) for i in range(points)]
    kills += [(signal.SIGTERM, total * f) for f in (0.25, 0.5, 0.75)] if backend == "sqlite" else []
    outcomes, terms = [], []
    for i, (sig, delay) in enumerate(kills):
        home = tmp_path / f"kill{i}"
        copy_of(home, i)
        proc = subprocess.Popen(_promote_cmd(pid), env=_env(home), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        started(proc)
        code = kill_after(proc, delay, sig)
        s = Store.locate(home)
        _verify_after_kill(s)
        got = _champion(s)
        assert got in (1, 2), f"signal {sig} at {delay:.2f}s left champion {got}"
        if sig == signal.SIGTERM:
            assert code in (0, 143, -signal.SIGTERM) and not list(scratch.root(s).glob("p*")), code
            terms.append(code)
        outcomes.append(got)
        if i % 4 == 0:  # the store stays usable: promotion completes or says it is done
            r = subprocess.run(_promote_cmd(pid), env=_env(home), capture_output=True, text=True, timeout=300)
            assert (r.returncode == 0) if got == 1 else ("already promoted" in r.stderr), r.stderr
            assert _champion(s) == 2
            if got == 1:  # the promotion that ran removed the killed one's scratch copy and its own
                assert not list(scratch.root(s).glob("p*"))
            _verify_after_kill(s)
        shutil.rmtree(home)
    print(f"\nkill points ({backend}): {len(kills)}; champion old {outcomes.count(1)}, new {outcomes.count(2)}; "
          f"full run {total:.1f}s; SIGTERM exit codes {terms}")
    assert outcomes.count(1) and outcomes.count(2)
