"""Weight scan: where in the network an update put its change.

Uses the per-tensor delta statistics the manifest keeps. A backdoor edit (ROME-style or a
planted neuron) concentrates its change in few rows of a weight matrix, unlike fine-tuning,
which spreads it; and an update whose change to a tensor is far larger than every earlier
promoted update's stands out against that history (z-score of the log norm). Embedding and
output matrices are left out of the concentration test: fine-tuning moves only the rows of
tokens its data uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_EMBEDDINGS = ("wte", "wpe", "embed", "lm_head")
_MIN_LOG_SD = 0.25  # a few updates give a tiny spread; never judge against less than ~28% variation


@dataclass(frozen=True)
class WeightFlag:
    tensor: str
    reason: str


def weight_scan(tensors: Mapping[str, Mapping[str, Any]], history: Sequence[Mapping[str, Mapping[str, Any]]],
                max_row_share: float, min_rel: float, max_z: float, min_history: int) -> tuple[list[WeightFlag],
                                                                                             dict[str, float]]:
    flags: list[WeightFlag] = []
    shares, zs = [0.0], [0.0]
    for name, s in tensors.items():
        if s["l2"] <= 0:
            continue
        matrix = len(s["shape"]) == 2 and not any(e in name for e in _EMBEDDINGS)
        if matrix and (s["rel"] or 0) >= min_rel:
            shares.append(s["top1pct_row_share"])
            if s["top1pct_row_share"] >= max_row_share:
                flags.append(WeightFlag(name, f"{s['top1pct_row_share']:.0%} of the change sits in the top 1% of "
                                              f"rows (fine-tuning spreads it)"))
        past = [math.log(h[name]["l2"]) for h in history if name in h and h[name]["l2"] > 0]
        if len(past) >= min_history:
            mean = sum(past) / len(past)
            sd = max(_MIN_LOG_SD, (sum((x - mean) ** 2 for x in past) / (len(past) - 1)) ** 0.5)
            z = (math.log(s["l2"]) - mean) / sd
            zs.append(z)
            if z >= max_z:
                flags.append(WeightFlag(name, f"change norm is {z:.1f} standard deviations above the "
                                              f"{len(past)} promoted updates before it"))
    return flags, {"weights.max_row_share": max(shares), "weights.max_history_z": max(zs),
                   "weights.flagged_tensors": float(len({f.tensor for f in flags}))}
