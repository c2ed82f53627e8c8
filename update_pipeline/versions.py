"""Model versions as folders: the result of a proposal, and any ledger version restored.

A proposal's result is the full model it would make the champion: the candidate's files
for a full update; for a delta or LoRA update, the base with the delta added (in float32,
cast back to the base's dtype) and the base's config and tokenizer files.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import struct
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.ledger import Entry, chain
from governance.proposals import Proposal
from governance.store import Store
from governance.tensorstore import TensorStore
from update_pipeline.deltas import compute_delta, lora_factors
from update_pipeline.hashing import sha256_files
from update_pipeline.scratch import scratch
from update_pipeline.weights import WEIGHT_SUFFIX, load_tensors, model_files

if TYPE_CHECKING:
    import torch

    from governance.lora_merge import LoraFactor


def apply_update(kind: str, candidate: Path, base_dir: Path, dest: Path) -> Path:
    """Write the full model an update makes from `base_dir` into `dest`."""
    from safetensors.torch import save_file

    if kind == "full":
        shutil.copytree(candidate, dest, dirs_exist_ok=True)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    files = model_files(base_dir)
    base_files = {p: load_tensors(p) for p in files if p.name.endswith(WEIGHT_SUFFIX)}
    merged = {n: t for ts in base_files.values() for n, t in ts.items()}
    if kind == "lora":
        factors, replaced = lora_factors(candidate, merged)
        new = {**{n: _merged(merged[n], f) for n, f in factors.items()}, **replaced}
    else:
        delta = compute_delta(kind, candidate, merged)
        new = {n: (merged[n].float() + d.float()).to(merged[n].dtype) for n, d in delta.items()}
    for path, tensors in base_files.items():
        out = {n: new.get(n, t).contiguous() for n, t in tensors.items()}
        target = dest / path.relative_to(base_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file(out, str(target), metadata={"format": "pt"})
    for p in files:
        if not p.name.endswith(WEIGHT_SUFFIX):
            target = dest / p.relative_to(base_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
    return dest


def _merged(t: torch.Tensor, factor: LoraFactor) -> torch.Tensor:
    """A base tensor with a LoRA factor merged in (governance.lora_merge: the bytes the ledger restores)."""
    import torch

    dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype]
    raw = factor.merge(t.contiguous().view(torch.uint8).numpy().tobytes(), dtype)
    return torch.frombuffer(bytearray(raw), dtype=t.dtype).reshape(t.shape)


def verified_base(store: Store, proposal: Proposal, tracking_uri: str | None = None) -> Path:
    """The proposal's base folder, every weight, config and tokenizer file hashed against the manifest now."""
    from governance.errors import VerificationError
    from update_pipeline import refs

    folder = refs.resolve(proposal.manifest["base"]["ref"], store, tracking_uri)
    expected = {**proposal.manifest["base"]["files"], **proposal.manifest["base"]["config_files"]}
    present = {n: folder / n for n in expected if (folder / n).is_file()}
    actual = sha256_files(list(present.values()))
    for name, digest in expected.items():
        if name not in present or actual[present[name]] != digest:
            raise VerificationError(f"base {folder}: {name} is not what the proposal was checked against "
                                    "(changed or missing since the proposal was made)")
    return folder


def require_candidate(store: Store, proposal: Proposal) -> None:
    """Refuse a proposal whose candidate files were released (it was promoted or rejected)."""
    blobs = store.blobs()
    if not all(blobs.has(d) for d in proposal.manifest["candidate"]["files"].values()):
        from governance.errors import UsageError

        raise UsageError(f"proposal {proposal.id}: its candidate files were released (the proposal was promoted "
                         "or rejected); propose the candidate again to check it")


def proposal_result(store: Store, proposal: Proposal, base_dir: Path, dest: Path) -> Path:
    """The model folder promoting `proposal` would make the champion."""
    cand = proposal.manifest["candidate"]
    files = {**cand["files"], **cand["config_files"]}
    require_candidate(store, proposal)
    with scratch(store, f"candidate-{proposal.id}") as tmp:
        staged = store.blobs().materialize(files, tmp / "candidate")
        source = staged if cand["kind"] != "delta" else staged / next(iter(cand["files"]))
        return apply_update(cand["kind"], source, base_dir, dest)


def adapter_of(store: Store, proposal: Proposal, base_dir: Path) -> tuple[dict[str, LoraFactor], dict[str, str]]:
    """A LoRA proposal's factors (target tensor -> factor) and its adapter files (name -> blob), read
    from the blobs against the base's tensor table only."""
    import torch

    from update_pipeline.weights import read_header

    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
    table = {n: torch.empty(t["shape"], dtype=dtypes.get(t["dtype"], torch.uint8), device="meta")
             for p in model_files(base_dir) if p.name.endswith(WEIGHT_SUFFIX) for n, t in read_header(p).items()}
    cand = proposal.manifest["candidate"]
    files = {**cand["files"], **cand["config_files"]}
    with scratch(store, f"adapter-{proposal.id}") as tmp:
        factors, _ = lora_factors(store.blobs().materialize(files, tmp / "adapter"), table)
    return factors, files


def raw_reader(folder: Path) -> Callable[[str, str], bytes]:
    """(file, tensor) -> that tensor's raw bytes in a model folder's safetensors file."""
    headers: dict[str, tuple[int, dict]] = {}

    def read(file: str, tensor: str) -> bytes:
        path = folder / file
        if file not in headers:
            with open(path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                headers[file] = (n, json.loads(fh.read(n)))
        n, header = headers[file]
        begin, end = header[tensor]["data_offsets"]
        with open(path, "rb") as fh:
            fh.seek(8 + n + begin)
            return fh.read(end - begin)

    return read


def matches(version: Mapping[str, Any], folder: Path) -> bool:
    """Whether `folder` holds exactly a version's bytes (a cached restore): every file's size; for a weights
    file its header against the header blob's digest and each tensor against its own sha256, on every core
    (the header and the tensors cover the file, so this is the file's bytes checked in parallel; one whole-file
    sha256 runs on one core)."""
    jobs: list[tuple[Path, int, int, str]] = []
    for name, f in version["files"].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != f["size"]:
            return False
        if "tensors" not in f:
            jobs.append((path, 0, f["size"], f["sha256"]))
            continue
        spans = sorted((e["offset"], e["size"], e["sha256"]) for e in f["tensors"].values())
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        pos, base = 0, 8 + n
        for offset, size, _ in spans:
            if offset != pos:
                return False
            pos += size
        if base + pos != f["size"]:
            return False
        jobs.append((path, 0, base, f["header"]))
        jobs += [(path, base + offset, size, sha) for offset, size, sha in spans]

    def ok(job: tuple[Path, int, int, str]) -> bool:
        path, start, size, sha = job
        if size == 0:
            return hashlib.sha256(b"").hexdigest() == sha
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                return hashlib.sha256(view[start:start + size]).hexdigest() == sha
            finally:
                view.release()

    jobs.sort(key=lambda j: -j[2])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return all(pool.map(ok, jobs))


def restore_version(store: Store, entries: list[Entry], version: int) -> Path:
    """The folder of a ledger version, restored and checked bit for bit (cached; the cache is kept within the
    policy's storage.cache_mb, update_pipeline.cache_gc)."""
    from update_pipeline import cache_gc

    versions = chain(entries, version)
    dest = store.cache_dir / "ledger" / f"v{version}"
    if dest.is_dir():
        if matches(versions[-1], dest):  # every byte hashed now, on every core
            return cache_gc.used(dest)
        shutil.rmtree(dest)  # a damaged cache is rebuilt from the blobs
    dest.parent.mkdir(parents=True, exist_ok=True)
    with scratch(store, f"restore-v{version}") as tmp:
        TensorStore(store.blobs()).restore(versions, tmp / "model")
        (tmp / "model").replace(dest)
    cache_gc.used(dest)
    cache_gc.bound(store, entries)
    return dest


def prune_restores(store: Store, keep: set[int]) -> None:
    """Drop restored versions other than `keep` from the cache (the ledger rebuilds them when needed)."""
    for folder in (store.cache_dir / "ledger").glob("v*"):
        if folder.name[1:].isdigit() and int(folder.name[1:]) not in keep:
            shutil.rmtree(folder, ignore_errors=True)
