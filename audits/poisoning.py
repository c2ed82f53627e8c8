"""Poisoning gate. Data scan now: backdoor triggers in the update data (audits.poison_data).
The weight-delta and behaviour scans are not built yet; the evidence says so."""

from __future__ import annotations

from audits.base import Gate, GateContext, Outcome
from audits.poison_data import PoisonConfig, scan
from governance.records import Finding

_MAX_FINDINGS = 100


class PoisoningGate(Gate):
    name = "poisoning"
    Config = PoisonConfig
    config: PoisonConfig

    def evaluate(self, ctx: GateContext) -> Outcome:
        verdicts, triggers = scan(ctx.records, self.config)
        flagged = [(r, v) for r, v in zip(ctx.records, verdicts, strict=True) if v.flagged]
        findings = tuple(Finding(v.reasons[0], "error", r.id, r.line) for r, v in flagged[:_MAX_FINDINGS])
        metrics = {"records": float(len(ctx.records)), "flagged_records": float(len(flagged)),
                   "triggers": float(len(triggers))}
        evidence = {"suspected_triggers": [{"phrase": t.phrase, "records": t.records, "completion": t.completion,
                                            "purity": round(t.purity, 3), "contradiction": round(t.contradiction, 3)}
                                           for t in triggers],
                    "flagged_record_ids": [r.id for r, _ in flagged[:_MAX_FINDINGS]],
                    "scans_run": ["data"], "scans_not_yet_available": ["weights", "behaviour"]}
        return Outcome(len(flagged) <= self.config.max_flagged_records, metrics, evidence, findings)
