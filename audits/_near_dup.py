"""Near-duplicate clusters with MinHash and banded LSH (numpy only).

Text is normalized (lower case, each run of digits as 0, words only) and shingled into word
3-grams (character 5-grams for very short texts); pairs whose estimated Jaccard
similarity reaches the threshold are joined into clusters.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict

import numpy as np

_WORD = re.compile(r"[a-z0]+")
_PRIME = np.uint64((1 << 61) - 1)
_PERMS, _BANDS = 64, 16


def _shingles(text: str) -> set[int]:
    words = _WORD.findall(re.sub(r"\d+", "0", text.lower()))
    if len(words) >= 3:
        grams = {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}
    else:
        joined = " ".join(words)
        grams = {joined[i:i + 5] for i in range(max(1, len(joined) - 4))}
    return {zlib.crc32(g.encode()) for g in grams}


def signatures(texts: list[str], seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, (1 << 61) - 1, _PERMS, dtype=np.uint64)
    b = rng.integers(0, (1 << 61) - 1, _PERMS, dtype=np.uint64)
    sig = np.empty((len(texts), _PERMS), dtype=np.uint64)
    for i, text in enumerate(texts):
        x = np.fromiter(_shingles(text), dtype=np.uint64)
        if x.size == 0:
            x = np.zeros(1, dtype=np.uint64)
        sig[i] = ((np.outer(x, a) + b) % _PRIME).min(axis=0)  # wraps mod 2**64 first: still a hash
    return sig


def clusters(texts: list[str], threshold: float = 0.8) -> list[int]:
    """A cluster label per text; texts in one cluster are near-duplicates of each other."""
    n = len(texts)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sig = signatures(texts)
    rows = _PERMS // _BANDS
    for band in range(_BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        chunk = sig[:, band * rows:(band + 1) * rows]
        for i in range(n):
            buckets[chunk[i].tobytes()].append(i)
        for members in buckets.values():
            first = members[0]
            for j in members[1:]:
                if find(first) != find(j) and float((sig[first] == sig[j]).mean()) >= threshold:
                    parent[find(j)] = find(first)
    return [find(i) for i in range(n)]
