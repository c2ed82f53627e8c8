"""What team mode costs: propose, check, approve, promote and rollback against PostgreSQL and an MLflow
tracking server, over the same on the embedded store (SQLite, local files), same model, same run.

A private PostgreSQL cluster (initdb/pg_ctl, 127.0.0.1) and `mlflow server` (its backend store in that
PostgreSQL, artifacts proxied, in a temp dir, one worker: four were slower on 2 cores) are started here, as the tests
start them. A GPT-2-style model
(default about 10M parameters, 40 MB in float32) built from its config and --rounds candidates trained on
it are made once; each round, in each store: propose the candidate against the champion, check it (a
policy with the data validation gate only: the gates are not what is measured), approve, promote, roll
back to version 0. Printed, medians over the rounds:

  servers / embedded per operation, the time spent uploading weights left out   (goal: <= 1.5 each)
  the team store's weight upload in MB/s / a plain upload of the checkpoint file to the same artifact
  store (MLflow's mlflow-artifacts: repository, one log_artifact)

"Uploading weights" is the time in the blob store's pushes to the team's artifact store (a version's blobs
go several at a time) and in MLflow's log_artifact(s) (the registry's model files); in the embedded store
the registry's files are hard links and the same calls, where made, copy locally, left out the same way.
Both figures are printed. The first round also stores version 0 (the base).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
OPS = ("propose", "check", "approve", "promote", "rollback")
UPLOAD = {"seconds": 0.0, "bytes": 0, "depth": 0}
BY_CALL: dict[str, list[float]] = {}  # "Class.method" -> [seconds, bytes, calls]


def _size(path: str) -> int:
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def count_uploads() -> None:
    """Time every upload of weights: the blob store's pushes (one blob, or a version's blobs in parallel)
    and MLflow's log_artifact(s); the outermost call only, on the main thread (the others are inside it)."""
    import threading

    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from governance.shared import BlobRemote

    def size_of(name: str, args: tuple) -> int:  # noqa: ANN001
        if name == "push_all":
            return sum(_size(str(p)) for p in {d: p for p, d in args[0]}.values())
        return _size(str(args[0]))

    for cls, names in ((BlobRemote, ("push", "push_all")), (HttpArtifactRepository, ("log_artifact", "log_artifacts")),
                       (LocalArtifactRepository, ("log_artifact", "log_artifacts"))):
        for name in names:
            original = getattr(cls, name)

            def timed(self, *args, _orig=original, _name=name, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
                if threading.current_thread() is not threading.main_thread() or UPLOAD["depth"]:
                    return _orig(self, *args, **kw)
                UPLOAD["depth"] += 1
                start = time.perf_counter()
                try:
                    return _orig(self, *args, **kw)
                finally:
                    UPLOAD["depth"] -= 1
                    took, size = time.perf_counter() - start, size_of(_name, args)
                    UPLOAD["seconds"] += took
                    UPLOAD["bytes"] += size
                    row = BY_CALL.setdefault(f"{type(self).__name__}.{_name}", [0.0, 0, 0])
                    row[0], row[1], row[2] = row[0] + took, row[1] + size, row[2] + 1
            setattr(cls, name, timed)


def rounds(store, base: Path, cands: list[tuple[Path, Path]]) -> dict[str, list[float]]:  # noqa: ANN001
    """Each op's time without uploads, per round; and the uploads' seconds and bytes under "upload"."""
    from update_pipeline.check import check
    from update_pipeline.demo import APPROVER, PROPOSER, _demo_service
    from update_pipeline.intake import propose

    svc = _demo_service(store)
    times: dict[str, list[float]] = {op: [] for op in (*OPS, "upload_s", "upload_bytes")}

    def op(name, fn, *args):  # noqa: ANN001, ANN002, ANN202
        before = dict(UPLOAD)
        start = time.perf_counter()
        out = fn(*args)
        up = UPLOAD["seconds"] - before["seconds"]
        times[name].append(time.perf_counter() - start - up)
        times["upload_s"].append(up)
        times["upload_bytes"].append(UPLOAD["bytes"] - before["bytes"])
        return out

    for i, (cand, data) in enumerate(cands):
        ref = "ledger:champion" if i else str(base)  # version 0 is stored by the first promote
        pid = op("propose", propose, store, ref, cand, data, PROPOSER, "demo-passphrase").id
        assert op("check", check, store, pid).report["verdict"] == "pass"
        op("approve", svc.approve, pid, APPROVER)
        op("promote", svc.promote, pid, APPROVER)
        op("rollback", svc.rollback, 0, APPROVER, "bench")
        print(f"  {store.home.name}: round {i + 1}/{len(cands)}", end="\r", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()

    import logging

    from bench.ledger_bench import fresh_store
    from governance.data import load_jsonl, write_jsonl
    from tests.servers import mlflow_server, postgres
    from update_pipeline import world
    from update_pipeline.architectures import build
    from update_pipeline.train import train_update

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "View run" line per run
    count_uploads()
    with tempfile.TemporaryDirectory(prefix="weightgate-team-") as tmp, postgres() as pg, \
            mlflow_server(pg.create("mlflow"), Path(tmp) / "artifacts") as tracking:
        work = Path(tmp)
        base = build("gpt2", work / "base", epochs=0, hidden=args.width, layers=args.layers, vocab=args.vocab)
        ckpt = base / "model.safetensors"
        countries = world.countries(n=24 + 4 * args.rounds)[24:]
        cands = []
        for i in range(args.rounds):
            data = write_jsonl(world.fact_records(countries[4 * i:4 * i + 4], "curated"), work / f"d{i}.jsonl")
            train_update(base, str(base), load_jsonl(data), work / f"c{i}", epochs=1, seed=i, holdout=0.0)
            cands.append((work / f"c{i}", data))
        print(f"model: {ckpt.stat().st_size / 1e6:.1f} MB checkpoint, {args.rounds} rounds")
        embedded = rounds(fresh_store(work, "embedded"), base, cands)
        team = rounds(fresh_store(work, "team", ledger_url=pg.create("ledger"), tracking_uri=tracking,
                                  model_name="team-bench"), base, cands)

        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        plain = get_artifact_repository(f"mlflow-artifacts://{tracking.split('://')[1]}/plain", tracking_uri=tracking)
        before = dict(UPLOAD)
        for i in range(args.rounds):
            plain.log_artifact(str(ckpt), f"r{i}")
        plain_rate = (UPLOAD["bytes"] - before["bytes"]) / (UPLOAD["seconds"] - before["seconds"])

    print(f"\n{'operation':<10} {'embedded s':>11} {'servers s':>10} {'ratio':>7}  (medians, uploads left out; "
          "goal <= 1.5)")
    for op in OPS:
        e, t = statistics.median(embedded[op]), statistics.median(team[op])
        print(f"{op:<10} {e:>11.3f} {t:>10.3f} {t / e:>7.2f}{'' if t / e <= 1.5 else '  over the goal'}")
    for name, times in (("embedded", embedded), ("servers", team)):
        print(f"time in uploads, {name}: {sum(times['upload_s']):.2f} s for {sum(times['upload_bytes']) / 1e6:.0f} MB")
    for call, (secs, size, calls) in sorted(BY_CALL.items()):
        print(f"  {call}: {calls} calls, {size / 1e6:.0f} MB in {secs:.2f} s")
    rate = sum(team["upload_bytes"]) / sum(team["upload_s"])
    print(f"weight upload: team store {rate / 1e6:.0f} MB/s / plain log_artifact of the checkpoint "
          f"{plain_rate / 1e6:.0f} MB/s = {rate / plain_rate:.2f}")


if __name__ == "__main__":
    main()
