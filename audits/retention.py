"""Forgetting across updates: a retention matrix over the lineage's probe sets.

Rows are model versions (the ledger versions the candidate descends from, then its base when
that is not the last of them, then the candidate); columns are updates, each with its probe
set (records held out of its training). A cell is the version's mean log-probability per token
of the probe records' completions (or texts), so it is defined for any model and any data.
Backward transfer (Lopez-Paz and Ranzato, 2017) is the mean, over earlier updates, of the
candidate's cell minus the cell of the version that update made: negative means forgetting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audits.base import Version
from audits.evaluation import score_suite, values
from audits.suites import Perplexity, Suite
from governance.data import DataRecord


def probe_suite(label: str, records: Sequence[DataRecord]) -> Suite | None:
    """The probe records as cases: completions given their prompts when the probe has any (they
    carry what the update taught; a text's score is mostly its wording), else the texts."""
    answered = [r for r in records if r.fields.get("completion")]
    cases = [Perplexity(kind="perplexity", id=r.id, prompt=r.fields.get("prompt", ""),
                        text=r.fields.get("completion") or r.fields.get("text", ""))
             for r in (answered or records) if r.fields.get("completion") or r.fields.get("text")]
    return Suite(name=f"probe {label}", cases=cases, trigger_robustness=False) if cases else None


@dataclass(frozen=True)
class Retention:
    rows: list[str]
    columns: list[str]
    cells: list[list[float | None]]  # rows x columns, mean log-probability per token
    per_record: dict[tuple[str, str], dict[str, float]]  # (row, column) -> record id -> value
    held_out: dict[str, bool]

    def cell(self, row: str, column: str) -> float | None:
        return self.cells[self.rows.index(row)][self.columns.index(column)]

    def backward_transfer(self, row: str) -> float | None:
        """Mean over earlier updates of (row's cell - the cell right after that update). A column is
        labelled as the row of the version its update made."""
        gaps = [self.cell(row, c) - self.cell(c, c)  # type: ignore[operator]
                for c in self.columns if c != row and c in self.rows]
        return sum(gaps) / len(gaps) if gaps else None

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "columns": self.columns,
                "cells": [[None if v is None else round(v, 4) for v in r] for r in self.cells],
                "held_out": self.held_out, "unit": "mean log-probability per token"}


def retention(versions: Sequence[Version], *, cache_dir: Path | None = None, batch: int = 32) -> Retention:
    """`versions`: rows, oldest first; each version's probe gives the column of the update that made it."""
    columns = [(v.label, probe_suite(v.label, v.probe), v) for v in versions if v.probe]
    columns = [(label, suite, v) for label, suite, v in columns if suite is not None]
    per: dict[tuple[str, str], dict[str, float]] = {}
    cells: list[list[float | None]] = []
    for row in versions:
        line: list[float | None] = []
        for label, suite, _ in columns:
            vals = values(score_suite(row.model_dir(), suite, cache_dir=cache_dir, digest=row.digest, batch=batch),
                          "perplexity.logprob")
            per[(row.label, label)] = vals
            line.append(sum(vals.values()) / len(vals) if vals else None)
        cells.append(line)
    return Retention([v.label for v in versions], [c[0] for c in columns], cells, per,
                     {c[0]: c[2].held_out for c in columns})
