"""Temp copies are removed on any exit, the cache stays within its budget, and `weightgate gc` frees what is
stale or over the budget without touching the ledger, blobs, keys or proposals."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from tests.conftest import tree_digest
from update_pipeline import refs, scratch, world
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.cli import app
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate

HOLD = ("import sys, time\nfrom governance.store import Store\nfrom update_pipeline.scratch import scratch\n"
        "with scratch(Store.locate(sys.argv[1]), 'check-copy') as d:\n"
        "    (d / 'model.safetensors').write_bytes(b'w' * 4096)\n    print(d, flush=True)\n    time.sleep(300)\n")


def _held(home, sig):
    """A process holding a scratch folder with a file in it, stopped by `sig`: (its folder, its exit code)."""
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(home)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    folder = Path(proc.stdout.readline().strip())
    assert (folder / "model.safetensors").is_file()
    proc.send_signal(sig)
    return folder, proc.wait(timeout=120)


def test_scratch_folders_go_on_any_exit_and_a_killed_ones_at_the_next_run(store):
    for sig, code in ((signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)):
        folder, rc = _held(store.home, sig)
        assert rc == code and not folder.exists() and folder.parent == scratch.root(store)
    killed, rc = _held(store.home, signal.SIGKILL)  # cannot be caught: left behind, its owner gone
    assert rc == -signal.SIGKILL and killed.is_dir() and scratch.stale(killed)
    with scratch.scratch(store, "next") as mine:
        assert not killed.exists() and mine.is_dir() and not scratch.stale(mine)  # the next run removed it
    assert not mine.exists()


def _gc(store, *args):
    r = CliRunner().invoke(app, ["--home", str(store.home), "gc", *args])
    assert r.exit_code == 0, r.output
    return r.stdout


def _age(path, seconds):
    then = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def outside_cache(store):
    return {k: v for k, v in tree_digest(store.home).items() if not k.startswith("cache/")}


def test_cache_bounded_and_gc_never_touches_the_ledger(store, base_model, full_candidate, update_data, tmp_path):
    # the policy in force: MLflow keeps only the champion's files, and no cache beyond what must stay
    text = world.policy(tmp_path / "p.yaml").read_text().replace("  registry_versions: 2", "  registry_versions: 1")
    store.policy_path.write_text(text.replace("  cache_mb: 10240", "  cache_mb: 0"))
    Weightgate(store).apply_policy(store.policy_path, ["dan"])
    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    assert check(store, p.id).report["verdict"] == "pass"
    assert not list(scratch.root(store).iterdir())  # the candidate's full model went with the check
    Weightgate(store).approve(p.id, "bob", "ok")
    assert Weightgate(store).promote(p.id, "bob").version == 1
    ledger = store.cache_dir / "ledger"
    assert sorted(q.name for q in ledger.iterdir()) == ["v1"]  # the champion, served by MLflow: hard links
    downloaded = refs.resolve(f"models:/{store.model_name}@champion", store)  # a copy, not hard links
    assert downloaded.parent == store.cache_dir / "registry" and not list(scratch.root(store).iterdir())
    earlier = shutil.copytree(downloaded, downloaded.with_name("earlier-v9"))  # an earlier command's download
    _age(downloaded, 3600)
    _age(earlier, 3600)
    assert refs.resolve("ledger:0", store) == ledger / "v0"  # a new restore: the budget is enforced
    assert not earlier.exists()  # least recently used, and nobody here holds it
    assert downloaded.is_dir() and (ledger / "v0").is_dir() and (ledger / "v1").is_dir()  # held here; champion

    before = outside_cache(store)
    killed = scratch.root(store) / f"p{_dead_pid()}.{scratch.HOST}.check-x.abc"
    live = scratch.root(store) / f"p{os.getpid()}.{scratch.HOST}.check-y.def"
    old, young = store.cache_dir / "tmpold", store.cache_dir / "tmpyoung"  # temp folders other code names
    for folder in (killed, live, old, young):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"w" * 2**20)
    _age(old, 2 * 86400)
    listing = sorted(str(q.relative_to(store.home)) for q in store.cache_dir.rglob("*"))
    dry = json.loads(_gc(store, "--dry-run", "--json"))
    gone = sorted(str(q.relative_to(store.home)) for q in (old, killed, downloaded))
    assert sorted(r["path"] for r in dry["removed"]) == gone, dry  # v0 was used just now: not yet
    assert dry["dry_run"] and dry["freed_bytes"] >= 2 * 2**20
    assert sorted(str(q.relative_to(store.home)) for q in store.cache_dir.rglob("*")) == listing
    _age(ledger / "v0", 3600)
    out = _gc(store)  # another process: it holds nothing
    assert "cache/ledger/v0" in out and "over budget" in out and "stale temp" in out and "freed" in out
    assert not killed.exists() and not old.exists() and not (ledger / "v0").exists() and not downloaded.exists()
    assert live.is_dir() and young.is_dir() and (ledger / "v1").is_dir()  # a running command's; the champion's
    (store.cache_dir / "eval").mkdir(exist_ok=True)
    (store.cache_dir / "eval" / "scores.json").write_text("[]")
    assert "--all" in _gc(store, "--all")
    assert sorted(q.name for q in store.cache_dir.iterdir()) == ["ledger", "registry", "tmp", "tmpyoung"]
    assert [q.name for q in ledger.iterdir()] == ["v1"] and live.is_dir()  # served files free nothing
    assert outside_cache(store) == before  # ledger, blobs, keys, proposals, MLflow: not a byte changed
    assert verify_store(store)["champion"] == 1
    _, folder = Weightgate(store).rollback(0, "bob")  # rebuilt from the ledger
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest == hashlib.sha256((base_model / "model.safetensors").read_bytes()).hexdigest()


def _dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout)
