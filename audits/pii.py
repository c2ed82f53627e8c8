"""PII gate: personal data in the update's data fails the check, whatever the scrub step said.

Counts findings per entity type and per field; more records with findings than the policy
allows fails. Evidence holds counts and masked snippets only: no detected value appears in
the report, its findings, or anything made from them.
"""

from __future__ import annotations

from collections import Counter

from audits.base import Gate, GateContext, Outcome
from audits.pii_engine import PiiConfig, mask, scan
from governance.records import Finding

_MAX_FINDINGS, _MAX_SNIPPETS = 100, 20


class PiiGate(Gate):
    name = "pii"
    Config = PiiConfig
    config: PiiConfig

    def evaluate(self, ctx: GateContext) -> Outcome:
        per_record = scan(ctx.records, self.config)
        by_type: Counter[str] = Counter()
        by_field: Counter[str] = Counter()
        findings: list[Finding] = []
        snippets: list[str] = []
        for record, found in zip(ctx.records, per_record, strict=True):
            by_type.update(f.entity_type for f in found)
            by_field.update(f.field for f in found)
            for f in found:
                if len(findings) < _MAX_FINDINGS:
                    findings.append(Finding(f"{f.entity_type} in '{f.field}' at {f.start}-{f.end} "
                                            f"(score {f.score:.2f})", "error", record.id, record.line))
            for field in {f.field for f in found}:
                if len(snippets) < _MAX_SNIPPETS:
                    snippets.extend(mask(record.fields[field], found, field)[:1])
        with_pii = sum(1 for found in per_record if found)
        metrics = {"records": float(len(ctx.records)), "records_with_pii": float(with_pii),
                   **{f"count.{t}": float(n) for t, n in sorted(by_type.items())}}
        evidence = {"by_entity_type": dict(by_type), "by_field": dict(by_field), "masked_examples": snippets,
                    "max_records_with_pii": self.config.max_records_with_pii,
                    "entities": self.config.entities, "score_threshold": self.config.score_threshold}
        passed = with_pii <= self.config.max_records_with_pii
        if self.config.memorization_probe:
            passed &= self._probe(ctx, per_record, metrics, evidence, findings)
        return Outcome(passed, metrics, evidence, tuple(findings))

    def _probe(self, ctx: GateContext, per_record: list, metrics: dict, evidence: dict,
               findings: list[Finding]) -> bool:
        """The behavioural half: leaks of values from the data, and exposure of planted canaries."""
        from audits.memorization import canary_exposure, probe

        canaries = [r for r in ctx.records if (r.meta or {}).get("canary")]
        if not any(per_record) and not canaries:
            evidence["memorization"] = "no personal data or canaries to probe"
            return True
        leaks, probes = probe(ctx.records, per_record, ctx.base_dir(), ctx.candidate_dir(), self.config.max_probes)
        exposure = canary_exposure(canaries, ctx.candidate_dir(), self.config.canary_candidates) if canaries else {}
        metrics.update({"probes": float(probes), "leaks": float(len(leaks)),
                        "leaks.exact": float(sum(lk.kind == "exact" for lk in leaks)),
                        "canary_exposure.max": max(exposure.values(), default=0.0)})
        evidence["leaks"] = [{"record_id": lk.record_id, "field": lk.field, "entity_type": lk.entity_type,
                              "kind": lk.kind} for lk in leaks[:_MAX_FINDINGS]]
        evidence["canary_exposure_bits"] = {k: round(v, 2) for k, v in exposure.items()}
        by_id = {r.id: r for r in ctx.records}
        for lk in leaks[:_MAX_FINDINGS]:
            findings.append(Finding(f"the updated model reproduces a {lk.entity_type} from '{lk.field}' "
                                    f"({lk.kind}); the base does not", "error", lk.record_id, by_id[lk.record_id].line))
        over = {k: v for k, v in exposure.items() if v > self.config.max_canary_exposure}
        for rid, bits in over.items():
            findings.append(Finding(f"canary exposure {bits:.1f} bits exceeds {self.config.max_canary_exposure}",
                                    "error", rid, by_id[rid].line))
        return len(leaks) <= self.config.max_leaks and not over
