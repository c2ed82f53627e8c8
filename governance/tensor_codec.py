"""Tensor bytes as zstd compresses them well: byte planes, and deltas between versions of a tensor.

A float tensor's delta is the integer difference of the raw bits (mod 2^bits, zigzag-coded), its
top two byte planes ordered by the parent's exponent (a stable sort the parent gives back): a
fine-tuning step moves weights by about the same amount whatever their size, so the number of bits
that change follows the exponent, and elements of one exponent together compress far better (the
planes below are random bits, kept in place). Other tensors use the XOR of the raw bits.
"""

from __future__ import annotations

import numpy as np

# dtype -> (unsigned type, signed type, mantissa bits, exponent mask)
_FLOATS = {"F32": (np.uint32, np.int32, 23, 0xFF), "BF16": (np.uint16, np.int16, 7, 0xFF),
           "F16": (np.uint16, np.int16, 10, 0x1F)}


def width(dtype: str) -> int:
    return {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
            "U16": 2}.get(dtype, 1)


def shuffle(raw: memoryview | bytes | np.ndarray, w: int) -> bytes:
    """Byte k of every element together (plane by plane): floats compress far better so."""
    a = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8).reshape(-1)
    if w == 1 or a.size % w:
        return a.tobytes()
    out = np.empty((w, a.size // w), np.uint8)
    grid = a.reshape(-1, w)
    for k in range(w):  # plane by plane: several times faster than a strided transpose
        out[k] = grid[:, k]
    return out.tobytes()


def unshuffle(data: bytes | np.ndarray, w: int) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if w == 1 or a.size % w:
        return a
    out = np.empty((a.size // w, w), np.uint8)
    planes = a.reshape(w, -1)
    for k in range(w):
        out[:, k] = planes[k]
    return out.reshape(-1)


def subtracts(dtype: str, size: int) -> bool:
    """Whether a tensor of this dtype and byte size is delta-coded by difference (else XOR)."""
    return dtype in _FLOATS and size % width(dtype) == 0


def _order(parent: np.ndarray, dtype: str) -> np.ndarray:
    _, _, mant, mask = _FLOATS[dtype]
    return np.argsort(((parent >> mant) & mask).astype(np.uint8), kind="stable")


def _sorted_planes(w: int) -> range:
    """The planes kept in exponent order: the top two (those below hold bits that change at random)."""
    return range(max(0, w - 2), w)


def sub_delta(raw: bytes | memoryview, parent: bytes | memoryview, dtype: str) -> bytes:
    """The byte planes of a float tensor's delta against its parent (see the module's note)."""
    ut, st, _, _ = _FLOATS[dtype]
    x, y = np.frombuffer(parent, ut), np.frombuffer(raw, ut)
    d = (y - x).view(st)  # wraps mod 2^bits
    w = d.itemsize
    zz = ((d << 1) ^ (d >> (8 * w - 1))).view(ut)
    planes = np.frombuffer(shuffle(zz, w), np.uint8).reshape(w, -1).copy()
    order = _order(x, dtype)
    for k in _sorted_planes(w):
        planes[k] = planes[k][order]
    return planes.tobytes()


def apply_sub(parent: np.ndarray, planes: np.ndarray, dtype: str) -> np.ndarray:
    """The child's raw bytes from its parent's (uint8) and the stored planes of `sub_delta`."""
    ut, _, _, _ = _FLOATS[dtype]
    x = parent.view(ut)
    w = x.itemsize
    stored = planes.reshape(w, -1)
    order = _order(x, dtype)
    out = np.empty((x.size, w), np.uint8)
    for k in range(w):
        if k in _sorted_planes(w):
            out[order, k] = stored[k]
        else:
            out[:, k] = stored[k]
    zz = out.reshape(-1).view(ut)
    d = (zz >> ut(1)) ^ (ut(0) - (zz & ut(1)))
    return (x + d).view(np.uint8)
