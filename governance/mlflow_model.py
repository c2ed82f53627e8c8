"""A ledger version as an MLflow model of the ``transformers`` flavor, without loading it.

Layout (what ``mlflow.transformers.save_model`` writes for a text-generation pipeline):
``MLmodel``, the environment files, ``model/`` holding the version's files byte for byte (weights
as the ledger stores them, sharded or not, in their own dtype) and ``components/tokenizer/``
holding its tokenizer files. ``mlflow.transformers.load_model`` and ``mlflow.pyfunc.load_model``
load it; the weights are never re-serialized, so their sha256 stay those the ledger signed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "added_tokens.json", "chat_template.jinja", "spiece.model")
ENV_FILES = ("MLmodel", "requirements.txt", "python_env.yaml", "conda.yaml")
RECIPE = "weightgate-recipe.json"


def omitted(version: int, entries: Mapping[int, Any]) -> frozenset[str]:
    """The files of ledger version `version` (`entries`: ledger version -> its entry) that its MLflow model
    leaves out: a recipe that is not the version's own. A LoRA or delta update's result carries its base's
    config files, the base's recipe among them (a LoRA's own recipe, if it has one, is in its ``adapter/``);
    a full model made elsewhere may carry a copy of its parent's."""
    predicate = entries[version].predicate
    kind = (predicate.get("proposal") or {}).get("kind")
    parent = entries.get(predicate.get("parent"))  # type: ignore[call-overload]
    mine = predicate["weights"]["files"].get(RECIPE, {}).get("sha256")
    theirs = parent.predicate["weights"]["files"].get(RECIPE, {}).get("sha256") if parent is not None else None
    return frozenset({RECIPE}) if kind in ("lora", "delta") or (mine and mine == theirs) else frozenset()


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)  # same file system: no second copy of the bytes while logging
    except OSError:
        shutil.copyfile(src, dest)


def write(folder: Path, dest: Path, source: str, omit: frozenset[str] = frozenset()) -> Path:
    """The MLflow model folder for the model `folder` holds (less the files named in `omit`), written into
    `dest`."""
    import torch
    import transformers
    from mlflow.models import Model
    from mlflow.models.signature import ModelSignature
    from mlflow.pyfunc import add_to_model
    from mlflow.types import ColSpec, Schema
    from mlflow.utils.environment import _mlflow_conda_env, _PythonEnv

    config = json.loads((folder / "config.json").read_text())
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name not in omit]
    for p in files:
        _link_or_copy(p, dest / "model" / p.name)
    tokenizer = [p for p in files if p.name in TOKENIZER_FILES]
    for p in tokenizer:
        _link_or_copy(p, dest / "components" / "tokenizer" / p.name)
    tok_class = json.loads((folder / "tokenizer_config.json").read_text()).get("tokenizer_class", "") \
        if (folder / "tokenizer_config.json").is_file() else ""
    model = Model(signature=ModelSignature(Schema([ColSpec("string")]), Schema([ColSpec("string")])))
    add_to_model(model, loader_module="mlflow.transformers", conda_env="conda.yaml", python_env="python_env.yaml")
    model.add_flavor("transformers", code=None, task="text-generation", instance_type="TextGenerationPipeline",
                     source_model_name=source, pipeline_model_type=(config.get("architectures") or ["?"])[0],
                     model_binary="model", components=["tokenizer"] if tokenizer else [],
                     **({"tokenizer_type": tok_class} if tok_class else {}),
                     torch_dtype=f"torch.{config.get('dtype') or config.get('torch_dtype') or 'float32'}",
                     transformers_version=transformers.__version__)
    model.model_size_bytes = sum(p.stat().st_size for p in files)
    model.save(str(dest / "MLmodel"))
    reqs = [f"transformers=={transformers.__version__}", f"torch=={torch.__version__.split('+')[0]}"]
    import yaml

    (dest / "conda.yaml").write_text(yaml.safe_dump(_mlflow_conda_env(additional_pip_deps=reqs)))
    (dest / "requirements.txt").write_text("\n".join(["mlflow", *reqs]) + "\n")
    _PythonEnv.current().to_yaml(str(dest / "python_env.yaml"))
    return dest


def served_files(root: Path) -> dict[str, Path]:
    """name -> path of the version files an MLflow model folder serves; raises ValueError when the folder
    holds anything else, or tokenizer files that differ from the model's."""
    import filecmp

    import yaml

    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if rel.startswith("model/") and rel.count("/") == 1:
            out[rel[len("model/"):]] = p
        elif rel.startswith("components/tokenizer/") and rel.count("/") == 2:
            twin = root / "model" / p.name
            if not twin.is_file() or not filecmp.cmp(p, twin, shallow=False):
                raise ValueError(f"{rel} is not the model's {p.name}")
        elif rel not in ENV_FILES:
            raise ValueError(f"{rel} is not a file a weightgate version serves")
    flavor = (yaml.safe_load((root / "MLmodel").read_text()) or {}).get("flavors", {}).get("transformers", {}) \
        if (root / "MLmodel").is_file() else {}
    if flavor.get("model_binary") != "model" or flavor.get("components", []) not in ([], ["tokenizer"]):
        raise ValueError("MLmodel does not load the model from model/ and its tokenizer from components/tokenizer")
    return out
