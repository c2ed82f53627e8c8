"""The gate interface: one abstract base with a template method.

``Gate.run()`` times the evaluation, turns any exception into an ``error`` result
(fail closed), and checks what the gate returned. A gate implements ``evaluate()``
only, reads the proposal through its context, and changes nothing.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from governance.data import DataRecord
from governance.proposals import Proposal
from governance.records import Finding, GateResult


class GateConfig(BaseModel):
    """Options every gate takes; each gate extends it with its thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["enforce", "warn"] = "enforce"


@dataclass(frozen=True)
class Version:
    """A model version in the candidate's lineage, and the probe set of the update that made it:
    records of that update's data held out before training (or, when its recipe names none,
    split off after the fact: ``held_out`` False), then records it trained on."""

    label: str
    digest: str | None
    model_dir: Callable[[], Path] = field(repr=False)
    probe: tuple[DataRecord, ...] = ()
    held_out: bool = True


@dataclass(frozen=True)
class GateContext:
    """What a gate may read. ``base_dir()`` and ``candidate_dir()`` are model folders made on first
    use: the base, and the full model the update would make (LoRA and delta updates applied)."""

    proposal: Proposal
    records: tuple[DataRecord, ...]
    base_dir: Callable[[], Path] = field(repr=False)
    candidate_dir: Callable[[], Path] = field(repr=False)
    history: Callable[[], list[dict[str, Any]]] = field(repr=False, default=lambda: [])
    """Per-tensor delta statistics of the updates promoted before, oldest first."""
    lineage: Callable[[], list[Version]] = field(repr=False, default=lambda: [])
    """The ledger versions the champion descends from, genesis first."""
    probe: Callable[[], tuple[tuple[DataRecord, ...], bool]] = field(repr=False, default=lambda: ((), False))
    """The candidate's own probe set, and whether it was held out of training."""
    cache_dir: Path | None = None


@dataclass(frozen=True)
class Outcome:
    """What ``evaluate`` returns: passed or not, with numbers and evidence."""

    passed: bool
    metrics: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()


class Gate(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[GateConfig]] = GateConfig

    def __init__(self, config: GateConfig) -> None:
        self.config = config

    @abstractmethod
    def evaluate(self, ctx: GateContext) -> Outcome:
        """The gate's own check. Raise on anything unexpected: the run fails closed."""

    def run(self, ctx: GateContext) -> GateResult:
        start = time.perf_counter()
        try:
            out = self.evaluate(ctx)
            if not isinstance(out, Outcome):
                raise TypeError(f"gate {self.name} returned {type(out).__name__}, not an Outcome")
            status = "pass" if out.passed else ("warn" if self.config.mode == "warn" else "fail")
            result = GateResult(self.name, status, out.metrics, out.evidence, out.findings, mode=self.config.mode)
        except Exception as exc:  # fail closed: an erroring gate fails the check
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            result = GateResult(self.name, "error", {}, {"error": msg},
                                (Finding(f"gate errored: {msg}"),), mode=self.config.mode)
        return replace(result, duration_s=time.perf_counter() - start)
