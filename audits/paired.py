"""Paired comparison of base and candidate on the same cases, judged for non-inferiority.

Per case the difference d = candidate - base. Its mean gets a normal interval with a
cluster-robust standard error (cases of one cluster, such as paraphrases of one prompt,
move together and count as one draw; a case without a cluster is its own):

    se = sqrt(G / (G - 1) * sum_g (sum_{i in g} (d_i - mean))^2) / n

(with every case its own cluster this is the usual sd / sqrt(n)). Two tests, chosen per metric
in the policy:

- ``non_inferiority`` (the default): the candidate passes only when the lower bound of the
  interval lies above ``-max_drop``: it must show it is no worse by more than the margin, so a
  small or noisy suite fails closed. One-sided p-value of "mean change <= -max_drop".
- ``harm``: the candidate fails only when the upper bound lies below ``-max_drop`` (harm shown).
  One-sided p-value of "mean change >= -max_drop".

Decisions use p-values adjusted by Holm's step-down method over every comparison of a check,
at alpha = (1 - confidence) / 2; unadjusted, that is exactly the interval rule above.

The minimum detectable effect (MDE) is the smallest margin the suite could show
non-inferiority at, with 80% power, if the candidate were truly no worse:
(z_{1-alpha} + z_{power}) * se, with se no smaller than one changed case would make it. A suite
whose MDE exceeds the policy's margin is too small to pass honestly: the report warns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Literal

Test = Literal["non_inferiority", "harm"]
_N = NormalDist()


@dataclass(frozen=True)
class Comparison:
    metric: str
    cases: int
    clusters: int
    base_mean: float
    candidate_mean: float
    diff: float
    lower: float
    upper: float
    se: float
    confidence: float
    max_drop: float
    test: Test = "non_inferiority"
    p_value: float = 1.0  # one-sided, of the test's null hypothesis
    p_holm: float = 1.0  # adjusted over every comparison of the check (holm())
    mde: float = 0.0  # minimum detectable effect at the power asked for
    lost: int = 0  # pass/fail metrics: passed on the base, failed on the candidate
    gained: int = 0
    worst: tuple[str, ...] = ()  # case ids with the largest drops, worst first

    @property
    def alpha(self) -> float:
        return (1 - self.confidence) / 2

    @property
    def regressed(self) -> bool:
        """Non-inferiority not shown (or, for the harm test, harm shown), after Holm's adjustment."""
        if self.test == "non_inferiority":
            return self.cases == 0 or self.p_holm > self.alpha
        return self.cases > 0 and self.p_holm <= self.alpha

    @property
    def too_small(self) -> bool:
        """The suite cannot show non-inferiority at this margin with the power asked for."""
        return self.mde > self.max_drop

    def as_dict(self) -> dict[str, object]:
        """JSON-safe: an infinite bound or error (no cases, one cluster) is None."""
        out: dict[str, object] = {k: ((round(v, 6) if math.isfinite(v) else None) if isinstance(v, float) else v)
                                  for k, v in self.__dict__.items()}
        out.update(worst=list(self.worst), regressed=self.regressed, too_small=self.too_small)
        return out

    def describe(self) -> str:
        ci = f"{self.confidence:.0%} interval [{self.lower:+.3f}, {self.upper:+.3f}]"
        what = "non-inferiority not shown" if self.test == "non_inferiority" else "harm shown"
        text = (f"{self.metric}: base {self.base_mean:.3f} -> candidate {self.candidate_mean:.3f} (mean change "
                f"{self.diff:+.3f}, {ci}, {self.cases} cases in {self.clusters} clusters; margin {self.max_drop}; "
                f"{what}: Holm-adjusted p={self.p_holm:.3g})")
        if self.lost or self.gained:
            text += f", {self.lost} lost / {self.gained} gained"
        return text + (f"; worst: {', '.join(self.worst[:5])}" if self.worst else "")

    def warning(self) -> str:
        need = cases_needed(self.se * math.sqrt(self.clusters), self.max_drop, self.confidence)
        return (f"{self.metric}: {self.cases} cases in {self.clusters} clusters cannot show non-inferiority at "
                f"margin {self.max_drop} with 80% power (minimum detectable effect {self.mde:.3f}); about "
                f"{need} independent cases are needed at this variance")


def clustered_se(diffs: Sequence[float], clusters: Sequence[str]) -> float:
    """Cluster-robust standard error of the mean of `diffs` (infinite with fewer than two clusters)."""
    n = len(diffs)
    groups: dict[str, float] = {}
    mean = sum(diffs) / n if n else 0.0
    for d, g in zip(diffs, clusters, strict=True):
        groups[g] = groups.get(g, 0.0) + (d - mean)
    k = len(groups)
    if k < 2:
        return math.inf
    return math.sqrt(k / (k - 1) * sum(e * e for e in groups.values())) / n


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def cases_needed(sd: float, margin: float, confidence: float = 0.95, power: float = 0.8) -> int:
    """Independent cases a suite needs to show non-inferiority at `margin` with `power`, when the per-case
    difference has standard deviation `sd` and the candidate is truly no worse."""
    z = _N.inv_cdf(1 - (1 - confidence) / 2) + _N.inv_cdf(power)
    return math.ceil((z * sd / margin) ** 2) if margin > 0 else 0


def _p(mean: float, se: float, margin: float, test: Test) -> float:
    """One-sided p-value: of 'mean <= -margin' (non-inferiority) or 'mean >= -margin' (harm)."""
    gap = mean + margin
    if se == 0 or math.isinf(se):
        if math.isinf(se):
            return 1.0
        return 0.0 if (gap > 0 if test == "non_inferiority" else gap < 0) else 1.0
    z = gap / se
    return 1 - _N.cdf(z) if test == "non_inferiority" else _N.cdf(z)


def compare(metric: str, base: Mapping[str, float], candidate: Mapping[str, float], *, max_drop: float,
            confidence: float = 0.95, test: Test = "non_inferiority", clusters: Mapping[str, str] | None = None,
            binary: bool = False, power: float = 0.8) -> Comparison:
    """Base and candidate values of one metric, paired by case id (cases on one side only are left out).
    `clusters`: case id -> cluster (default: each case its own). `binary`: values are 1.0 and 0.0."""
    ids = sorted(set(base) & set(candidate))
    n = len(ids)
    diffs = [candidate[i] - base[i] for i in ids]
    groups = [(clusters or {}).get(i, i) for i in ids]
    mean = sum(diffs) / n if n else 0.0
    se = clustered_se(diffs, groups) if n else math.inf
    z = _N.inv_cdf(1 - (1 - confidence) / 2)
    low, high = (mean - z * se, mean + z * se) if n else (-math.inf, math.inf)
    k = len(set(groups))
    one = [-1.0 if j == 0 else 0.0 for j in range(n)]  # the smallest change a pass/fail suite can see
    floor = clustered_se(one, groups) if binary and n else 0.0
    mde = (z + _N.inv_cdf(power)) * max(se, floor) if n else math.inf
    worst = tuple(i for d, i in sorted(zip(diffs, ids, strict=True)) if d < 0)[:20]
    lost = sum(1 for i in ids if base[i] > 0.5 >= candidate[i]) if binary else 0
    gained = sum(1 for i in ids if candidate[i] > 0.5 >= base[i]) if binary else 0
    p = _p(mean, se, max_drop, test) if n else 1.0
    return Comparison(metric, n, k, sum(base[i] for i in ids) / n if n else 0.0,
                      sum(candidate[i] for i in ids) / n if n else 0.0, mean, low, high, se, confidence, max_drop,
                      test, p, p, mde, lost, gained, worst)


def adjust(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons of one check with Holm-adjusted p-values."""
    adjusted = holm([c.p_value for c in comparisons])
    return [replace(c, p_holm=p) for c, p in zip(comparisons, adjusted, strict=True)]
