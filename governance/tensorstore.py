"""Model versions in the blob store, restorable bit for bit.

A version is a manifest of files. A safetensors file is kept as its header bytes plus
one blob per tensor: a keyframe (the raw bytes, byte-shuffled, zstd), a delta against
the same tensor of the parent version (governance.tensor_codec: for floats the difference of the
raw bits ordered by the parent's exponent, else their XOR; byte-shuffled, zstd),
or, for a LoRA update, the adapter's two factors (governance.lora_merge rebuilds the
merged tensor from the parent's bit for bit; used only when the merge was checked to
give the promoted bytes). Every K-th version in a chain is a keyframe, so a restore
applies at most K-1 deltas; LoRA versions, a few kilobytes each, stretch a chain to at
most 4K. A tensor whose bytes did not change points at its parent's blob. Restoring
checks the whole file's sha256 against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from governance.blobs import BlobStore
from governance.errors import VerificationError
from governance.lora_merge import MERGEABLE, LoraFactor, factor_matrix
from governance.tensor_codec import apply_sub, shuffle, sub_delta, subtracts, unshuffle
from governance.tensor_codec import width as _width

KEYFRAME_EVERY = 8
_LEVEL = 1
WEIGHTS_SUFFIX = ".safetensors"


class TensorStore:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._adapters: dict[str, bytes] = {}  # adapter files read while restoring

    # -- writing -------------------------------------------------------------------------------------
    def put_version(self, folder: Path, parent: Mapping[str, Any] | None,
                    parent_raw: Callable[[str, str], bytes] | None,
                    adapter: Mapping[str, LoraFactor] | None = None,
                    adapter_files: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Store every file of a model folder; returns the version manifest.

        `parent_raw(file, tensor)` gives the parent's raw tensor bytes for deltas; `adapter` the LoRA
        factor of each tensor a LoRA update changed, `adapter_files` its files (name -> blob, kept).
        """
        depth = (parent or {}).get("depth", -1) + 1
        keyframe = parent is None or depth >= KEYFRAME_EVERY * (4 if adapter else 1)
        files: dict[str, Any] = {}
        with self.blobs.batch():  # a team store's remote gets the version's blobs before anything names them
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                name = path.relative_to(folder).as_posix()
                if name.endswith(WEIGHTS_SUFFIX):
                    prev = None if keyframe else (parent or {}).get("files", {}).get(name)
                    files[name] = self._put_weights(path, name, prev, parent_raw, adapter or {},
                                                    adapter_files or {})
                else:
                    data = path.read_bytes()
                    files[name] = {"sha256": self.blobs.put_bytes(data), "size": len(data)}
        out: dict[str, Any] = {"depth": 0 if keyframe else depth, "files": files}
        if adapter_files:
            out["adapter"] = dict(adapter_files)
        return out

    @staticmethod
    def _lora_entry(factor: LoraFactor, base: bytes, dtype: str, sha: str,
                    files: Mapping[str, str]) -> dict[str, Any] | None:
        """Where the factors are in the adapter's files, when merging them into the parent's tensor gives
        the promoted bytes."""
        file, a, b = factor.source
        if (file not in files or dtype not in MERGEABLE
                or hashlib.sha256(factor.merge(base, dtype)).hexdigest() != sha):
            return None
        return {"file": files[file], "a": a, "b": b, "rank": int(factor.a.shape[0]),
                "scale": float(factor.scale).hex(), "transpose": factor.transpose}

    def _put_weights(self, path: Path, name: str, prev: Mapping[str, Any] | None,
                     parent_raw: Callable[[str, str], bytes] | None,
                     adapter: Mapping[str, LoraFactor], adapter_files: Mapping[str, str]) -> dict[str, Any]:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=_LEVEL)
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            (n,) = struct.unpack("<Q", mm[:8])
            header_bytes = bytes(mm[:8 + n])
            header = json.loads(header_bytes[8:])
            header.pop("__metadata__", None)
            tensors: dict[str, Any] = {}
            view = memoryview(mm)
            try:
                for tname, t in header.items():
                    begin, end = t["data_offsets"]
                    raw = view[8 + n + begin:8 + n + end]
                    entry = {"sha256": hashlib.sha256(raw).hexdigest(), "offset": begin, "size": end - begin,
                             "dtype": t["dtype"]}
                    old = (prev or {}).get("tensors", {}).get(tname)
                    width = _width(t["dtype"])
                    if old and old["sha256"] == entry["sha256"]:
                        entry.update(encoding=old["encoding"], blob=old["blob"], base=old.get("base"))
                    elif old and old["size"] == entry["size"] and parent_raw is not None:
                        parent_bytes = parent_raw(name, tname)
                        lora = (self._lora_entry(adapter[tname], parent_bytes, t["dtype"], entry["sha256"],
                                                 adapter_files) if tname in adapter else None)
                        if lora:
                            entry.update(encoding="lora", base=old["sha256"], blob=lora["file"], lora=lora)
                        elif subtracts(t["dtype"], entry["size"]):
                            entry.update(encoding="sub-zstd", base=old["sha256"], blob=self.blobs.put_bytes(
                                cctx.compress(sub_delta(raw, parent_bytes, t["dtype"]))))
                        else:
                            xor = np.bitwise_xor(np.frombuffer(raw, dtype=np.uint8),
                                                 np.frombuffer(parent_bytes, dtype=np.uint8))
                            entry.update(encoding="xor-zstd", base=old["sha256"],
                                         blob=self.blobs.put_bytes(cctx.compress(shuffle(xor.data, width))))
                    else:
                        entry.update(encoding="zstd", blob=self.blobs.put_bytes(cctx.compress(shuffle(raw, width))))
                    tensors[tname] = entry
                    del raw
            finally:
                view.release()
            file_sha = hashlib.sha256(mm).hexdigest()
        return {"sha256": file_sha, "size": path.stat().st_size, "header": self.blobs.put_bytes(header_bytes),
                "tensors": tensors}

    # -- reading -------------------------------------------------------------------------------------
    def _planes(self, entry: Mapping[str, Any]) -> np.ndarray:
        """A zstd, xor-zstd or sub-zstd blob decompressed: byte planes, as stored."""
        import zstandard

        data = zstandard.ZstdDecompressor().decompress(self.blobs.read(entry["blob"], verify=False),
                                                        max_output_size=entry["size"])
        if len(data) != entry["size"]:
            raise VerificationError(f"blob {entry['blob'][:12]} holds {len(data)} bytes, not {entry['size']}")
        return np.frombuffer(data, dtype=np.uint8)

    def _rebuild(self, steps: list[Mapping[str, Any]]) -> np.ndarray:
        """One tensor's raw bytes from its entries along a chain, keyframe first: XOR deltas are applied to
        the byte planes as stored (XOR commutes with the shuffle), difference deltas to the elements.

        Not checked here: the restored file's sha256 is checked once at the end, which covers every tensor
        of every version in the chain."""
        width = _width(steps[-1]["dtype"])
        state: np.ndarray | None = None
        shuffled, sha = True, None
        for e in steps:
            if e["sha256"] == sha:
                continue  # unchanged: the parent's blob
            if e["encoding"] != "zstd" and (state is None or e.get("base") != sha):
                raise VerificationError(f"delta base {str(e.get('base'))[:12]} is not in the version chain")
            if state is not None and e["encoding"] != "zstd" and state.size != e["size"]:
                raise VerificationError(f"a {e['encoding']} delta of {e['size']} bytes on a {state.size}-byte parent")
            if e["encoding"] == "zstd":
                state, shuffled = self._planes(e), True
            elif e["encoding"] == "xor-zstd":
                if not shuffled:
                    state, shuffled = np.frombuffer(shuffle(state, width), np.uint8), True
                state = np.bitwise_xor(state, self._planes(e))
            elif e["encoding"] == "sub-zstd" and subtracts(e["dtype"], e["size"]):
                parent = unshuffle(state, width) if shuffled else state
                state, shuffled = apply_sub(parent, self._planes(e), e["dtype"]), False
            elif e["encoding"] == "lora":
                raw = unshuffle(state, width) if shuffled else state
                state, shuffled = np.frombuffer(self._merge(e, raw.tobytes()), np.uint8), False
            else:
                raise VerificationError(f"unknown tensor encoding {e['encoding']!r}")
            sha = e["sha256"]
        if state is None:
            raise VerificationError("a tensor has no keyframe in its version chain")
        return unshuffle(state, width) if shuffled else state

    def _merge(self, entry: Mapping[str, Any], base: bytes) -> bytes:
        """A LoRA-encoded tensor: its factors, read from the adapter file's blob, merged into its parent."""
        lora = entry["lora"]
        data = self._adapters.get(lora["file"])
        if data is None:
            data = self._adapters[lora["file"]] = self.blobs.read(lora["file"])
        try:
            (n,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8:8 + n])

            def matrix(name: str) -> np.ndarray:
                t = header[name]
                begin, end = t["data_offsets"]
                return factor_matrix(data[8 + n + begin:8 + n + end], t["dtype"]).reshape(t["shape"])

            a, b = matrix(lora["a"]), matrix(lora["b"])
            factor = LoraFactor(a, b, float.fromhex(lora["scale"]), bool(lora["transpose"]))
            return factor.merge(base, entry["dtype"])
        except (KeyError, TypeError, ValueError, struct.error) as exc:
            raise VerificationError(f"LoRA factors {lora.get('a')!r} in blob {str(lora['file'])[:12]} do not "
                                    f"rebuild their tensor ({str(exc)[:60]})") from None

    def restore(self, chain: list[Mapping[str, Any]], dest: Path) -> Path:
        """Write the last version of `chain` (oldest first, from its keyframe) into `dest`: tensor by tensor
        on every core, a few tensors in memory at a time, hashed as they are written."""
        dest.mkdir(parents=True, exist_ok=True)
        for name, f in chain[-1]["files"].items():
            out = dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            if "tensors" not in f:
                out.write_bytes(self.blobs.read(f["sha256"]))
                continue
            order = sorted(f["tensors"], key=lambda t: f["tensors"][t]["offset"])
            steps = {t: [v["files"][name]["tensors"][t] for v in chain
                         if t in v["files"].get(name, {}).get("tensors", {})] for t in order}
            self._write_file(out, f, order, lambda t, s=steps: self._rebuild(s[t]))
        return dest

    def _write_file(self, out: Path, f: Mapping[str, Any], order: list[str],
                    rebuild: Callable[[str], np.ndarray]) -> None:
        header = self.blobs.read(f["header"])
        h = hashlib.sha256(header)
        pos = 0
        workers = os.cpu_count() or 1
        with open(out, "wb") as fh, ThreadPoolExecutor(max_workers=workers) as pool:
            fh.write(header)
            for i in range(0, len(order), 2 * workers):  # a window of tensors at a time: bounded memory
                window = order[i:i + 2 * workers]
                for t, raw in zip(window, pool.map(rebuild, window), strict=True):
                    e = f["tensors"][t]
                    if e["offset"] != pos:
                        raise VerificationError(f"{out.name}: tensor {t!r} does not start where the one before "
                                                "it ends")
                    fh.write(raw.data)
                    h.update(raw.data)
                    pos += raw.size
        if h.hexdigest() != f["sha256"]:
            raise VerificationError(f"restored {out.name} does not match its recorded sha256; "
                                    "run 'weightgate ledger verify' to find the damaged blob")


def version_blobs(version: Mapping[str, Any]) -> set[str]:
    """Every blob a version manifest names."""
    out: set[str] = set(version.get("adapter", {}).values())
    for f in version["files"].values():
        if "tensors" in f:
            out.add(f["header"])
            out.update(e["blob"] for e in f["tensors"].values())
        else:
            out.add(f["sha256"])
    return out
