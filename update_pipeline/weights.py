"""Reading weights safely: safetensors only, validated before a byte of data is trusted.

Pickle-based files are refused with the imports they would run. A model folder may not
hold symlinks that leave it. Tensors with NaN or Inf are refused.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import InputError, PickleRefused
from update_pipeline.pickle_scan import looks_like_pickle, pickle_imports

if TYPE_CHECKING:
    import torch

_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_MAX_HEADER = 100 << 20
MAX_SIDE_FILE = 128 << 20  # config, tokenizer and other non-weight files
WEIGHT_SUFFIX = ".safetensors"


def refuse_pickle(path: Path) -> None:
    if looks_like_pickle(path):
        imports = pickle_imports(path)
        named = ", ".join(imports[:8]) + (" ..." if len(imports) > 8 else "") if imports else "none found"
        raise PickleRefused(f"{path}: pickle-based weights are refused, never unpickled "
                            f"(its pickle would import: {named}); convert it to safetensors")


def read_header(path: Path) -> dict[str, dict]:
    """The tensor table of a safetensors file, checked against the file's real size."""
    refuse_pickle(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise InputError(f"{path}: truncated safetensors file ({size} bytes, no header)")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER):
                raise InputError(f"{path}: truncated or malformed safetensors (header says {n} bytes, "
                                 f"file has {size - 8} after the length)")
            header = json.loads(fh.read(n), parse_constant=lambda c: {}[c])
    except (UnicodeDecodeError, ValueError, KeyError, RecursionError):
        raise InputError(f"{path}: malformed safetensors header (not plain JSON, or nested too deeply)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: malformed safetensors header")
    header.pop("__metadata__", None)
    end_of_data = 0
    for name, t in header.items():
        try:
            dtype, shape, (begin, end) = t["dtype"], t["shape"], t["data_offsets"]
            want = math.prod(shape) * _ITEMSIZE[dtype]
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: tensor {name!r}: malformed entry in the header") from None
        if end - begin != want or begin < 0:
            raise InputError(f"{path}: tensor {name!r}: offsets {begin}..{end} do not fit shape {shape} {dtype}")
        end_of_data = max(end_of_data, end)
    if 8 + n + end_of_data != size:
        raise InputError(f"{path}: truncated or padded safetensors: header needs {8 + n + end_of_data} "
                         f"bytes, file has {size}")
    return header


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a validated safetensors file, refusing NaN or Inf."""
    import torch
    from safetensors.torch import load_file

    read_header(path)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"{path}: unreadable safetensors: {exc}") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise InputError(f"{path}: tensor {name!r} has {bad} NaN/Inf values")
    return tensors


def model_files(folder: Path, max_side_file: int = MAX_SIDE_FILE) -> list[Path]:
    """Every regular file of a model folder, refusing links that leave it, pickles, and non-weight files over
    `max_side_file` bytes."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    root = folder.resolve()
    files: list[Path] = []
    for p in sorted(folder.rglob("*")):
        real = p.resolve()
        if p.is_symlink() and root not in real.parents:
            raise InputError(f"{p}: symlink leaves the model folder (points to {real})")
        if p.is_file():
            if not p.name.endswith(WEIGHT_SUFFIX) and p.stat().st_size > max_side_file:
                raise InputError(f"{p}: {p.stat().st_size >> 20} MiB is over the {max_side_file >> 20} MiB the "
                                 "policy allows for a file that is not safetensors weights (limits.max_side_file_mb)")
            refuse_pickle(p)
            files.append(p)
    refuse_custom_code(folder, files)
    return files


def refuse_custom_code(folder: Path, files: list[Path]) -> None:
    """weightgate never runs a model's own code: no .py files, no auto_map in its configs."""
    for p in files:
        if p.suffix in (".py", ".pyc", ".so"):
            raise InputError(f"{p}: model folders with code are refused (weightgate never runs a model's own "
                             "code; use an architecture transformers ships)")
        if p.name in ("config.json", "adapter_config.json", "tokenizer_config.json"):
            try:
                cfg = json.loads(p.read_text())
            except (UnicodeDecodeError, ValueError):
                raise InputError(f"{p}: not valid JSON") from None
            if not isinstance(cfg, dict):
                continue
            mapping = cfg.get("auto_mapping") or {}  # PEFT records the base class it was made for
            outside = isinstance(mapping, dict) and not str(mapping.get("parent_library", "transformers.")
                                                             ).startswith("transformers.")
            if cfg.get("auto_map") or outside or (mapping and not isinstance(mapping, dict)):
                raise InputError(f"{p}: names custom code (auto_map or auto_mapping outside transformers); "
                                 "weightgate never runs a model's own code")


def folder_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a model folder's safetensors files, names unique across files."""
    out: dict[str, torch.Tensor] = {}
    weights = [p for p in model_files(folder) if p.name.endswith(WEIGHT_SUFFIX)]
    if not weights:
        raise InputError(f"{folder}: no .safetensors weights found")
    for p in weights:
        for name, t in load_tensors(p).items():
            if name in out:
                raise InputError(f"{p}: tensor {name!r} appears in more than one file")
            out[name] = t
    return out
