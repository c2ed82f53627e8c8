"""One LoRA factor merged into its base tensor, the same bytes on every machine.

W' = cast(float64(W) + scale * sum_k outer(B[:, k], A[k, :]))   (transposed for Conv1D layers)

The products of float32 factors are exact in float64 and the rank terms are added in a fixed
order, element by element, with no BLAS call whose summation order depends on the machine or
its threads; the cast rounds to nearest even. So the ledger can keep a LoRA update as its
factors and restore the merged weights bit for bit, and a promotion's result is this merge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MERGEABLE = ("F32", "F16", "BF16")


def _to_f64(raw: bytes, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return np.frombuffer(raw, {"F32": np.float32, "F16": np.float16}[dtype]).astype(np.float64)


def factor_matrix(raw: bytes, dtype: str) -> np.ndarray:
    """An adapter tensor's raw bytes as float32 (exact from F16 and BF16)."""
    return _to_f64(raw, dtype).astype(np.float32)


def _from_f64(w: np.ndarray, dtype: str) -> bytes:
    if dtype == "BF16":  # float64 -> float32 -> bfloat16, each rounding to nearest even (torch's rule)
        u = w.astype(np.float32).view(np.uint32)
        return ((u + (((u >> 16) & 1) + 0x7FFF)) >> 16).astype(np.uint16).tobytes()
    return w.astype({"F32": np.float32, "F16": np.float16}[dtype]).tobytes()


@dataclass(frozen=True)
class LoraFactor:
    a: np.ndarray        # (r, in) float32
    b: np.ndarray        # (out, r) float32
    scale: float
    transpose: bool      # Conv1D weights are stored (in, out)
    source: tuple[str, str, str] = ("", "", "")  # (adapter file, lora_A tensor, lora_B tensor) it was read from

    @property
    def shape(self) -> tuple[int, int]:
        out, inp = self.b.shape[0], self.a.shape[1]
        return (inp, out) if self.transpose else (out, inp)

    def delta(self) -> np.ndarray:
        """scale * B @ A in float64, summed rank by rank, in the base tensor's layout."""
        a, b = self.a.astype(np.float64), self.b.astype(np.float64)
        acc = np.multiply.outer(b[:, 0], a[0])
        term = np.empty_like(acc)
        for k in range(1, a.shape[0]):  # multiply, then add: two roundings, never a fused multiply-add
            np.multiply.outer(b[:, k], a[k], out=term)
            acc += term
        acc *= self.scale
        return acc.T if self.transpose else acc

    def merge(self, base_raw: bytes, dtype: str) -> bytes:
        """The merged tensor's raw bytes from the base tensor's."""
        if dtype not in MERGEABLE:
            raise ValueError(f"LoRA merge of a {dtype} tensor")
        w = _to_f64(base_raw, dtype).reshape(self.shape)
        w += self.delta()
        return _from_f64(w, dtype)
