"""Tensor store round trips: every delta coding gives the bytes back, old chains still restore."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from governance import tensor_codec
from governance.blobs import BlobStore
from governance.errors import VerificationError
from governance.tensor_codec import apply_sub, sub_delta
from governance.tensorstore import TensorStore

INTS = {4: torch.int32, 2: torch.int16, 1: torch.uint8}


def raw(t: torch.Tensor) -> bytes:
    return t.contiguous().view(INTS[t.element_size()]).numpy().tobytes()


@pytest.mark.parametrize("dtype,name", [(torch.float32, "F32"), (torch.bfloat16, "BF16"), (torch.float16, "F16")])
def test_difference_delta_is_lossless_on_awkward_values(dtype, name):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4099, generator=g) * 0.02).to(dtype)
    y = x + (torch.randn(4099, generator=g) * 1e-3).to(dtype)
    special = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-40, -1e-40, 65504.0]
    y[:8] = torch.tensor(special).to(dtype)
    x[8:16] = torch.tensor(special).to(dtype)
    y[16] = -x[16]  # sign flips
    planes = sub_delta(raw(y), raw(x), name)
    assert len(planes) == len(raw(y))
    back = apply_sub(np.frombuffer(raw(x), np.uint8), np.frombuffer(planes, np.uint8), name)
    assert back.tobytes() == raw(y)


def _version(folder, tensors):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("xor_until", [0, 3])  # 3: a store written when floats were XOR-coded too
def test_chain_of_difference_xor_and_unchanged_tensors_restores_bit_for_bit(tmp_path, monkeypatch, xor_until):
    import governance.tensorstore as ts

    store = TensorStore(BlobStore(tmp_path / "blobs"))
    g = torch.Generator().manual_seed(1)
    w = torch.randn(64, 48, generator=g) * 0.05
    versions = [{"w": w, "b": torch.zeros(48, dtype=torch.bfloat16), "ids": torch.arange(10, dtype=torch.int32)}]
    for i in range(1, 5):
        prev = versions[-1]
        versions.append({"w": prev["w"] - 3e-4 * torch.randn(64, 48, generator=g),
                         "b": prev["b"] if i % 2 else prev["b"] + 0.01,
                         "ids": prev["ids"] + i})  # integers: XOR deltas
    manifests, parent = [], None
    for i, tensors in enumerate(versions):
        folder = _version(tmp_path / f"v{i}", {k: v.contiguous() for k, v in tensors.items()})

        def parent_raw(_file, tname, p=versions[i - 1] if i else None):
            return raw(p[tname])
        monkeypatch.setattr(ts, "subtracts", (lambda *_a: False) if i < xor_until else tensor_codec.subtracts)
        parent = store.put_version(folder, parent, parent_raw if i else None)
        manifests.append(parent)
    encodings = {t: e["encoding"] for t, e in manifests[-1]["files"]["model.safetensors"]["tensors"].items()}
    assert encodings == {"w": "sub-zstd", "b": "sub-zstd", "ids": "xor-zstd"}
    if xor_until:
        assert manifests[2]["files"]["model.safetensors"]["tensors"]["w"]["encoding"] == "xor-zstd"
    for i in range(len(versions)):
        out = store.restore(manifests[:i + 1], tmp_path / f"r{i}")
        want = (tmp_path / f"v{i}" / "model.safetensors").read_bytes()
        assert hashlib.sha256((out / "model.safetensors").read_bytes()).digest() == hashlib.sha256(want).digest()


def test_delta_on_a_parent_of_another_size_is_refused(tmp_path):
    store = TensorStore(BlobStore(tmp_path / "blobs"))
    a = {"w": torch.randn(8, 8)}
    b = {"w": a["w"] + 1e-3}
    m0 = store.put_version(_version(tmp_path / "a", a), None, None)
    m1 = store.put_version(_version(tmp_path / "b", b), m0, lambda _f, t: raw(a[t]))
    forged = {**m0, "files": {"model.safetensors": {**m0["files"]["model.safetensors"]}}}
    entry = dict(forged["files"]["model.safetensors"]["tensors"]["w"])
    small = _version(tmp_path / "c", {"w": torch.randn(4, 4)})
    entry.update(store.put_version(small, None, None)["files"]["model.safetensors"]["tensors"]["w"],
                 sha256=entry["sha256"])
    forged["files"]["model.safetensors"]["tensors"] = {"w": entry}
    with pytest.raises(VerificationError, match="delta of 256 bytes on a 64-byte parent"):
        store.restore([forged, m1], tmp_path / "r")
