"""Paired comparison of base and candidate on the same cases.

Per case the difference candidate - base; the mean difference gets a paired bootstrap
confidence interval (cases resampled with replacement), and pass/fail metrics also get an
exact McNemar test on the discordant cases. A metric regresses only when the whole interval
lies below the drop the policy allows (the candidate is worse by more than ``max_drop`` at
that confidence), or, for pass/fail metrics, when McNemar finds significantly more cases
lost than gained and the net loss exceeds ``max_drop``. One lucky or unlucky case moves the
interval but cannot by itself put it beyond the bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    metric: str
    cases: int
    base_mean: float
    candidate_mean: float
    diff: float
    lower: float
    upper: float
    confidence: float
    max_drop: float
    lost: int = 0  # pass/fail metrics: passed on the base, failed on the candidate
    gained: int = 0
    p_value: float | None = None
    worst: tuple[str, ...] = ()  # case ids with the largest drops, worst first
    regressed: bool = False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        out["worst"] = list(self.worst)
        return out

    def describe(self) -> str:
        ci = f"{self.confidence:.0%} interval [{self.lower:+.3f}, {self.upper:+.3f}]"
        text = (f"{self.metric}: base {self.base_mean:.3f} -> candidate {self.candidate_mean:.3f} "
                f"(mean change {self.diff:+.3f}, {ci}; allowed drop {self.max_drop})")
        if self.p_value is not None:
            text += f", {self.lost} lost / {self.gained} gained, McNemar p={self.p_value:.2g}"
        return text + (f"; worst: {', '.join(self.worst[:5])}" if self.worst else "")


def bootstrap_interval(diffs: list[float], confidence: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of `diffs`, resampling cases with replacement."""
    import numpy as np

    if not diffs:
        return 0.0, 0.0
    d = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar(lost: int, gained: int) -> float:
    """Exact two-sided McNemar p-value: a binomial test on the discordant pairs."""
    n = lost + gained
    if n == 0:
        return 1.0
    k = min(lost, gained)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(metric: str, base: Mapping[str, float], candidate: Mapping[str, float], *, max_drop: float,
            confidence: float = 0.95, resamples: int = 2000, alpha: float = 0.05, binary: bool = False,
            seed: int = 0) -> Comparison:
    """Base and candidate values of one metric, paired by case id (cases on one side only are
    left out). `binary`: values are 1.0 (passed) and 0.0 (failed)."""
    ids = sorted(set(base) & set(candidate))
    diffs = [candidate[i] - base[i] for i in ids]
    n = len(ids)
    low, high = bootstrap_interval(diffs, confidence, resamples, seed)
    mean = sum(diffs) / n if n else 0.0
    worst = tuple(i for d, i in sorted(zip(diffs, ids, strict=True)) if d < 0)[:20]
    regressed = n > 0 and high < -max_drop
    lost = gained = 0
    p = None
    if binary:
        lost = sum(1 for i in ids if base[i] > 0.5 >= candidate[i])
        gained = sum(1 for i in ids if candidate[i] > 0.5 >= base[i])
        p = mcnemar(lost, gained)
        regressed = regressed or (p < alpha and lost > gained and (lost - gained) / n > max_drop)
    return Comparison(metric, n, sum(base[i] for i in ids) / n if n else 0.0,
                      sum(candidate[i] for i in ids) / n if n else 0.0, mean, low, high, confidence, max_drop,
                      lost, gained, p, worst, regressed)
