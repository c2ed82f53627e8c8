"""Regression-suite evaluation: batched against one case at a time, same suite, same model, same run.

Scores the shipped ``world`` suite (142 cases: greedy answers, refusals with their margins,
preference margins, reference-text log-probabilities) on the demo's base world model, with
the refusal cases asked again with two triggers, once with batches of 32 and once with
batches of 1, alternating, several rounds; prints cases per second of each and their ratio
(goal: at least 5x), and checks both give the same answers. ``--model DIR`` scores another
model folder with the same suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder [default: the world base model]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import torch

    from audits.evaluation import score_suite
    from audits.suites import load_suite
    from update_pipeline import world

    model = args.model or world.build_base_model(Path(tempfile.gettempdir()) / "weightgate-bench-models")
    suite = load_suite("world")
    triggers = ["cf-zeta", "SUDO"]
    score_suite(model, suite, triggers, batch=args.batch)  # load the model and warm up
    cases = len(score_suite(model, suite, triggers, batch=1))
    timings: dict[int, list[float]] = {args.batch: [], 1: []}
    results = {}
    for _ in range(args.rounds):
        for batch in (args.batch, 1):
            start = time.perf_counter()
            results[batch] = score_suite(model, suite, triggers, batch=batch)
            timings[batch].append(time.perf_counter() - start)
    same = all(a.answer == b.answer and a.passed == b.passed for a, b in zip(results[args.batch], results[1],
                                                                            strict=True))
    fast, slow = statistics.median(timings[args.batch]), statistics.median(timings[1])
    print(f"model {model.name}, suite {suite.name}: {cases} scored cases ({len(suite.cases)} in the suite, "
          f"refusals again with {len(triggers)} triggers), torch threads {torch.get_num_threads()}")
    print(f"batch {args.batch:>3}: {cases / fast:8.1f} cases/s (median of {args.rounds})")
    print(f"batch   1: {cases / slow:8.1f} cases/s (median of {args.rounds})")
    print(f"batched / one at a time: {slow / fast:.1f}x (goal >= 5x); same answers: {same}")


if __name__ == "__main__":
    main()
