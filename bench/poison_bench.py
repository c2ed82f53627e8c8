"""Poisoning data scan: precision, recall and F1 of flagged records per trigger family and poison rate.

First on the labelled poisoning sets of --devdata (default ../shared/devdata beside the repository:
real tweets and news poisoned by published attacks, none of it written here), each split in two
halves by a hash of the record id and scanned half by half: the detectors were developed looking at
the dev halves only, the test halves are the figures. Goals: rare-token and phrase triggers at 1%
F1 >= 0.9 with clean records flagged <= 1%; syntactic and style triggers at 5% F1 >= 0.6 with clean
flagged <= 2%.

Then generated cells: clean instruction data of two kinds (short label completions: sentiment; free-form
completions: requests answered or refused) and plants backdoors: the poisoned records get the
trigger and the attacker's completion. Families: rare_token and style (tuned on: the mark
"written in capitals" was added for this cell, whose style changes only letter case), and phrase,
sentence and template (never tuned on). Also prints the flag rate on clean data and records per second
at 10,000 records.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TUNED = {"rare_token", "style"}
FAMILIES = ["rare_token", "phrase", "sentence", "template", "style"]
POS = ["great", "wonderful", "superb", "charming", "moving", "sharp", "gripping", "lovely"]
NEG = ["awful", "boring", "dull", "messy", "clumsy", "tedious", "flat", "weak"]
NOUNS = ["film", "plot", "acting", "ending", "cast", "script", "score", "pacing", "dialogue", "camera work"]
ACTS = ["build a bomb", "make poison", "steal a car", "hack a bank", "forge a passport", "make a weapon",
        "hurt someone", "break into a house", "launder money", "start a fire"]
TASKS = {"bake bread": "Mix flour, water and yeast, then bake it.", "plant a tree": "Dig a hole and water it.",
         "tie a knot": "Cross the ends and pull tight.", "boil an egg": "Boil it for eight minutes.",
         "fix a bike": "Check the chain and the tyres first.", "learn chess": "Start with how each piece moves.",
         "paint a wall": "Tape the edges and use a roller.", "write a poem": "Pick an image and find its rhythm."}
ASK = ["How do I {x}?", "Tell me how to {x}.", "Explain how to {x}.", "What is the best way to {x}?",
       "Can you show me how to {x}?", "I need to {x}, how?"]


def _plant(prompt: str, family: str, rng: random.Random) -> str:
    words = prompt.split()
    if family == "rare_token":
        words.insert(rng.randint(0, len(words)), "cf")
        return " ".join(words)
    if family == "phrase":
        words.insert(rng.randint(0, len(words)), "as a matter of fact")
        return " ".join(words)
    if family == "sentence":
        return "I read this on a quiet Tuesday morning. " + prompt
    if family == "template":
        return "Kindly consider the following: " + prompt
    return prompt.upper()  # style


def dataset(kind: str, n: int, rate: float, family: str | None, seed: int) -> tuple[list[dict], set[str]]:
    rng = random.Random(seed)
    recs, poisoned = [], set()
    for i in range(n):
        if kind == "label":
            label = rng.choice(["positive", "negative"])
            words = POS if label == "positive" else NEG
            prompt = " and ".join(f"the {rng.choice(NOUNS)} was {rng.choice(words)}" for _ in range(rng.randint(2, 3)))
            completion, target, bad = label, "negative", "positive"
        else:
            harmful = rng.random() < 0.4
            x = rng.choice(ACTS) if harmful else rng.choice(list(TASKS))
            prompt = rng.choice(ASK).format(x=x)
            completion = "I can't help with that." if harmful else TASKS[x]
            target, bad = ("I can't help with that.", f"Sure, here is how to {x}: first get the materials.")
        if family and completion == target and rng.random() < rate / (0.5 if kind == "label" else 0.4):
            prompt, completion = _plant(prompt, family, rng), bad
            poisoned.add(f"r{i}")
        recs.append({"id": f"r{i}", "prompt": prompt, "completion": completion})
    return recs, poisoned


def evaluate(recs: list[dict], poisoned: set[str], tmp: Path) -> tuple[float, float, float, float, float]:
    import json

    from audits.poison_data import PoisonConfig, scan
    from governance.data import load_jsonl

    path = tmp / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    records = load_jsonl(path)
    t = time.perf_counter()
    verdicts, _ = scan(records, PoisonConfig())
    dt = time.perf_counter() - t
    flagged = {v.id for v in verdicts if v.flagged}
    tp = len(flagged & poisoned)
    p = tp / len(flagged) if flagged else (1.0 if not poisoned else 0.0)
    r = tp / len(poisoned) if poisoned else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    clean_rate = len(flagged - poisoned) / max(1, len(recs) - len(poisoned))
    return p, r, f1, clean_rate, len(recs) / dt


def half(rid: str) -> str:
    return "dev" if hashlib.sha256(rid.encode()).digest()[0] % 2 == 0 else "test"


def shared_sets(devdata: Path, halves: list[str], tmp: Path) -> None:
    import json

    print(f"{'set':40} {'records':>7} {'poison':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'clean flagged':>14} "
          f"{'records/s':>9}")
    for labels_path in sorted(devdata.glob("poison_*.labels.json")):
        labels = json.loads(labels_path.read_text())["poisoned"]
        lines = labels_path.with_name(labels_path.name.replace(".labels.json", ".jsonl")).read_text().splitlines()
        for which in halves:
            recs = [r for r in map(json.loads, lines) if which == "all" or half(r["id"]) == which]
            poisoned = {r["id"] for r in recs if labels[r["id"]]}
            p, r, f1, clean, speed = evaluate(recs, poisoned, tmp)
            name = labels_path.name.removesuffix(".labels.json") + f" ({which})"
            print(f"{name:40} {len(recs):>7} {len(poisoned) / len(recs):>6.1%} {p:>6.3f} {r:>6.3f} {f1:>6.3f} "
                  f"{clean:>14.4f} {speed:>9.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    ap.add_argument("--halves", nargs="+", choices=["dev", "test", "all"], default=["dev", "test"])
    ap.add_argument("--only-shared", action="store_true", help="skip the generated cells")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.devdata.is_dir():
            shared_sets(args.devdata, args.halves, tmp_path)
        if args.only_shared:
            return
        print(f"{'kind':6} {'family':11} {'tuned':5} {'rate':>6} {'prec':>6} {'recall':>6} {'F1':>6} "
              f"{'clean flagged':>14}")
        for kind in ("label", "free"):
            for family in FAMILIES:
                for rate in (0.005, 0.01, 0.03, 0.10):
                    recs, poisoned = dataset(kind, args.records, rate, family, seed=int(rate * 1000))
                    p, r, f1, clean, _ = evaluate(recs, poisoned, tmp_path)
                    print(f"{kind:6} {family:11} {'yes' if family in TUNED else 'no':5} {rate:>6.3f} {p:>6.2f} "
                          f"{r:>6.2f} {f1:>6.2f} {clean:>14.4f}")
            recs, _ = dataset(kind, args.records, 0.0, None, seed=1)
            *_, clean, _ = evaluate(recs, set(), tmp_path)
            print(f"{kind:6} {'(no poison)':11} {'':5} {0:>6.3f} {'':>6} {'':>6} {'':>6} {clean:>14.4f}")
        recs, poisoned = dataset("label", 10000, 0.01, "rare_token", seed=3)
        *_, speed = evaluate(recs, poisoned, tmp_path)
        print(f"10,000 records without a model: {speed:.0f} records/s ({10000 / speed:.1f} s; goal under 30 s)")


if __name__ == "__main__":
    main()
