"""The per-tensor change an update makes to its base, for each kind of candidate.

- ``full``: a model folder; delta = candidate - base, tensor by tensor.
- ``delta``: one safetensors file of deltas for some of the base's tensors.
- ``lora``: a PEFT adapter folder; delta = scaling * B @ A (transposed for Conv1D layers).
Names, shapes and dtypes must match the base; anything else is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.errors import InputError
from update_pipeline.weights import WEIGHT_SUFFIX, folder_tensors, load_tensors, model_files, refuse_pickle

if TYPE_CHECKING:
    import torch

    from governance.lora_merge import LoraFactor

ADAPTER_CONFIG = "adapter_config.json"


def candidate_kind(path: Path) -> str:
    if path.is_dir():
        return "lora" if (path / ADAPTER_CONFIG).is_file() else "full"
    if path.is_file():
        if path.name.endswith(WEIGHT_SUFFIX):
            return "delta"
        refuse_pickle(path)
        raise InputError(f"{path}: a candidate is a model folder, a .safetensors delta or a LoRA adapter folder")
    raise InputError(f"{path}: no such file or directory")


def _match(name: str, t: torch.Tensor, base: dict[str, torch.Tensor], where: Path) -> torch.Tensor:
    if name not in base:
        raise InputError(f"{where}: tensor {name!r} is not in the base model")
    b = base[name]
    if tuple(t.shape) != tuple(b.shape):
        raise InputError(f"{where}: tensor {name!r} has shape {tuple(t.shape)}, base has {tuple(b.shape)}")
    if t.dtype != b.dtype:
        raise InputError(f"{where}: tensor {name!r} has dtype {t.dtype}, base has {b.dtype}")
    return b


def lora_factors(folder: Path, base: dict[str, torch.Tensor]) -> tuple[dict[str, LoraFactor], dict[str, torch.Tensor]]:
    """A PEFT adapter as (target tensor -> its LoRA factor, target tensor -> full replacement
    (modules_to_save)), checked against the base's names, shapes and dtypes."""
    try:
        cfg: dict[str, Any] = json.loads((folder / ADAPTER_CONFIG).read_text())
        r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{folder / ADAPTER_CONFIG}: not a readable PEFT LoRA config (needs r, lora_alpha)") from None
    import math

    from governance.lora_merge import MERGEABLE, LoraFactor

    if r < 1 or not math.isfinite(alpha):
        raise InputError(f"{folder / ADAPTER_CONFIG}: r must be at least 1 and lora_alpha a finite number "
                         f"(r={cfg['r']!r}, lora_alpha={cfg['lora_alpha']!r})")
    if cfg.get("use_dora"):
        raise InputError(f"{folder / ADAPTER_CONFIG}: DoRA adapters are not supported")
    scaling = alpha / (r ** 0.5 if cfg.get("use_rslora") else r)
    weights = [p for p in model_files(folder) if p.name.endswith(WEIGHT_SUFFIX)]
    if not weights:
        raise InputError(f"{folder}: no adapter_model.safetensors")
    tensors: dict[str, torch.Tensor] = {}
    file_of: dict[str, str] = {}
    for p in weights:
        loaded = load_tensors(p)
        tensors.update(loaded)
        file_of.update(dict.fromkeys(loaded, p.relative_to(folder).as_posix()))
    factors: dict[str, LoraFactor] = {}
    for name in sorted(tensors):
        if ".lora_A." not in name:
            continue
        module = name.split(".lora_A.")[0].removeprefix("base_model.model.")
        b_name = name.replace(".lora_A.", ".lora_B.")
        if b_name not in tensors:
            raise InputError(f"{folder}: {name} has no matching lora_B")
        a, b = tensors[name].float().numpy(), tensors[b_name].float().numpy()
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise InputError(f"{folder}: {name} and its lora_B are not (r, in) and (out, r) matrices")
        factor = LoraFactor(a, b, scaling, bool(cfg.get("fan_in_fan_out")), (file_of[name], name, b_name))
        target = module + ".weight"
        base_t = base.get(target)
        if base_t is None:
            raise InputError(f"{folder}: adapter targets {module!r}, which is not in the base model")
        if factor.shape != tuple(base_t.shape):
            raise InputError(f"{folder}: adapter for {module!r} makes shape {factor.shape}, "
                             f"base has {tuple(base_t.shape)}")
        if str(base_t.dtype).removeprefix("torch.") not in ("float32", "float16", "bfloat16"):
            raise InputError(f"{folder}: adapter targets {target!r} of dtype {base_t.dtype}; LoRA merges "
                             f"only {', '.join(MERGEABLE)} weights")
        factors[target] = factor
    replaced = {}
    for name, t in tensors.items():  # modules_to_save: full replacements
        if ".lora_" not in name:
            target = name.removeprefix("base_model.model.")
            _match(target, t, base, folder)
            replaced[target] = t
    if not factors and not replaced:
        raise InputError(f"{folder}: adapter holds no LoRA tensors")
    return factors, replaced


def _lora(folder: Path, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import torch

    factors, replaced = lora_factors(folder, base)
    out = {n: torch.from_numpy(f.delta()).to(base[n].dtype) for n, f in factors.items()}
    return {**out, **{n: t - base[n] for n, t in replaced.items()}}


def compute_delta(kind: str, candidate: Path, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """name -> (candidate - base) for every tensor the update changes or could change."""
    if kind == "lora":
        return _lora(candidate, base)
    if kind == "delta":
        tensors = load_tensors(candidate)
        for name, t in tensors.items():
            _match(name, t, base, candidate)
        return tensors
    tensors = folder_tensors(candidate)
    missing = sorted(set(base) - set(tensors))
    if missing:
        raise InputError(f"{candidate}: tensors of the base are missing: {', '.join(missing[:5])}")
    return {n: t - _match(n, t, base, candidate) for n, t in tensors.items()}


def delta_stats(delta: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """Per-tensor norms kept in the manifest for later gates."""
    import torch

    out: dict[str, dict[str, Any]] = {}
    for name in sorted(delta):
        d = delta[name].double()
        l2 = float(torch.linalg.vector_norm(d))
        base_l2 = float(torch.linalg.vector_norm(base[name].double()))
        rows = d.reshape(d.shape[0], -1) if d.dim() > 1 else d.reshape(-1, 1)
        row_sq = (rows * rows).sum(dim=1)
        k = max(1, int(round(row_sq.numel() * 0.01)))
        top = float(row_sq.topk(k).values.sum() / row_sq.sum()) if l2 > 0 else 0.0
        out[name] = {"shape": list(d.shape), "l2": l2, "base_l2": base_l2,
                     "rel": l2 / base_l2 if base_l2 > 0 else None,
                     "max_abs": float(d.abs().max()) if d.numel() else 0.0,
                     "frac_changed": float((d != 0).double().mean()) if d.numel() else 0.0,
                     "top1pct_row_share": top}
    return out
