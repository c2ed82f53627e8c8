"""Immutable records that travel through the flow: gate results and the check report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "error"]
STATUSES: tuple[str, ...] = ("pass", "warn", "fail", "error")


@dataclass(frozen=True)
class Finding:
    """One thing a gate found. Never carries raw sensitive values: ids, lines, masked text only."""

    message: str
    level: Literal["error", "warning", "note"] = "error"
    record_id: str | None = None
    line: int | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class GateResult:
    name: str
    status: Status
    metrics: Mapping[str, float] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    duration_s: float = 0.0
    mode: Literal["enforce", "warn"] = "enforce"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"gate {self.name}: unknown status {self.status!r}")

    @property
    def blocking(self) -> bool:
        return self.status in ("fail", "error")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "mode": self.mode,
                "metrics": dict(self.metrics), "evidence": dict(self.evidence),
                "findings": [f.to_dict() for f in self.findings], "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True)
class Report:
    proposal_id: str
    manifest_digest: str
    policy_name: str
    policy_digest: str
    gates: tuple[GateResult, ...]
    created: float
    policy_parts: Mapping[str, Any] = field(default_factory=dict)  # file digest and suite digests

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        """Fail closed: no gates at all, or any blocking gate, fails."""
        if not self.gates or any(g.blocking for g in self.gates):
            return "fail"
        return "pass"

    @property
    def failed_gates(self) -> list[str]:
        return [g.name for g in self.gates if g.blocking]

    def to_dict(self) -> dict[str, Any]:
        return {"proposal": self.proposal_id, "manifest_digest": self.manifest_digest,
                "policy": {"name": self.policy_name, "digest": self.policy_digest, **self.policy_parts},
                "verdict": self.verdict, "failed_gates": self.failed_gates,
                "gates": [g.to_dict() for g in self.gates], "created": self.created}
