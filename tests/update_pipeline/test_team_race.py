"""Two operators on two machines press "promote" at the same moment, twelve times (WEIGHTGATE_RACE_ROUNDS=N
for more): the database's row lock lets exactly one through each time, the ledger verifies, and MLflow's
alias names the ledger's champion."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from governance.ledger import Ledger, champion
from governance.lineage import Lineage
from governance.store import CHAMPION_ALIAS, Store
from tests.conftest import write_jsonl
from tests.update_pipeline.test_crash import _env
from update_pipeline import world
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate

pytestmark = [pytest.mark.servers, pytest.mark.slow]
ROUNDS = int(os.environ.get("WEIGHTGATE_RACE_ROUNDS", "12"))

# a member's long-lived process: on each line "PROPOSAL START", wait until START, promote, print the outcome
WORKER = """
import json, sys, time
from governance.store import Store
from update_pipeline.service import Weightgate
wg = Weightgate(Store.locate())
answers, sys.stdout = sys.stdout, sys.stderr  # MLflow's messages go to the log, outcomes to the test
for line in sys.stdin:
    pid, start = line.split()
    time.sleep(max(0.0, float(start) - time.time()))
    try:
        out = {"version": wg.promote(pid, "olga").version}
    except Exception as e:
        out = {"error": type(e).__name__ + ": " + str(e)}
    print(json.dumps(out), file=answers, flush=True)
"""


def _nudged(base, out, seed):
    """A copy of `base` whose weights moved by a little noise: an update small enough that every gate passes."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(base, out)
    tensors = load_file(out / "model.safetensors")
    g = torch.Generator().manual_seed(seed)
    save_file({n: t + 1e-4 * torch.randn(t.shape, generator=g) if t.is_floating_point() and t.dim() == 2 else t
               for n, t in tensors.items()}, out / "model.safetensors", metadata={"format": "pt"})
    return out


def _chain(store, base_model, tmp_path, n):
    """n proposals, each made against the one before, checked and approved: promoted in order, each one's
    base is the champion its round starts from. The policy in force asks for the data validation gate only:
    the gates are not what is raced."""
    import yaml

    policy = yaml.safe_load(store.policy_path.read_text())
    policy.update(name="race", gates={"data_validation": policy["gates"]["data_validation"]})
    (tmp_path / "race.yaml").write_text(yaml.safe_dump(policy))
    Weightgate(store).apply_policy(tmp_path / "race.yaml", ["dan"])
    cs = world.countries(n=24 + 2 * n)[24:]
    base, ids = base_model, []
    for i in range(n):
        data = write_jsonl(tmp_path / f"d{i}.jsonl", world.fact_records(cs[2 * i:2 * i + 2], "curated"))
        out = _nudged(base, tmp_path / f"c{i}", seed=i)
        p = propose(store, str(base), out, data, "alice", "alice-passphrase")
        report = check(store, p.id).report
        assert report["verdict"] == "pass", report["failed_gates"]
        Weightgate(store).approve(p.id, "bob", "ok")
        ids.append(p.id)
        base = out
    return ids


def test_rounds_of_two_simultaneous_promotes(team_store, base_model, tmp_path):
    other = Store.locate(tmp_path / "other")
    shutil.copytree(team_store.home, other.home)  # another machine with the same configuration
    ids = _chain(team_store, base_model, tmp_path, ROUNDS)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], env=_env(home), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
               for home, log in zip((team_store.home, other.home), logs, strict=True)]
    lineage = Lineage(team_store.tracking_uri(), team_store.artifacts_dir)
    try:
        for k, pid in enumerate(ids, start=1):
            start = time.time() + 0.5
            for w in workers:
                w.stdin.write(f"{pid} {start}\n")
                w.stdin.flush()
            lines = [w.stdout.readline() for w in workers]
            assert all(lines), [log.read_text()[-2000:] for log in logs]
            outcomes = [json.loads(line) for line in lines]
            won = [o for o in outcomes if "version" in o]
            lost = [o["error"] for o in outcomes if "error" in o]
            assert len(won) == 1 and won[0]["version"] == k, (k, outcomes)
            assert len(lost) == 1 and f"proposal {pid} is already promoted" in lost[0], outcomes
            entries = Ledger.of(other).entries()
            assert champion(entries) == k
            alias = lineage.client().get_model_version_by_alias(team_store.model_name, CHAMPION_ALIAS)
            assert alias.tags["weightgate.ledger_version"] == str(k)
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(timeout=60)
    assert verify_store(team_store)["champion"] == verify_store(other)["champion"] == ROUNDS
