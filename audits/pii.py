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
        return Outcome(with_pii <= self.config.max_records_with_pii, metrics, evidence, tuple(findings))
