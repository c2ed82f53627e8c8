"""The policy: which gates must pass, with what thresholds, and who must approve.

Validated with pydantic (`extra="forbid"`) at the edge. A policy that does not parse,
has an unknown key, or names an unknown gate is an error, never a fallback to defaults.
Each gate's own options are validated by that gate's config model (see audits.registry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from governance.errors import PolicyError
from governance.signing import canonical_json, sha256_hex

UpdateKind = Literal["full", "delta", "lora"]


class Approvals(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    required: int = Field(ge=1, description="distinct approver keys needed; the proposer never counts")


class Limits(BaseModel):
    """Sizes intake accepts; anything larger is refused with a message naming the limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_side_file_mb: int = Field(128, ge=1, description="a config, tokenizer or other non-weight file")
    max_data_mb: int = Field(1024, ge=1, description="the update data file")
    max_records: int = Field(1_000_000, ge=1, description="records in the update data")


class Training(BaseModel):
    """How ``weightgate train`` trains when its options do not say."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lora_targets: list[str] | None = Field(None, description="module names LoRA adapts; null: PEFT's default "
                                           "for the architecture (every linear layer when PEFT has none)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: a GPU when there is one")
    lr: float | None = Field(None, gt=0, description="learning rate; null: 3e-4 for full weights, 1e-3 for LoRA")
    batch_size: int = Field(8, ge=1, description="records per optimizer step")
    max_len: int | None = Field(None, ge=1, description="tokens a record is cut to; null: the model's context, "
                                "at most 256")


class Storage(BaseModel):
    """What the store keeps besides the ledger's one copy of every version."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registry_versions: int = Field(2, ge=1, description="MLflow holds the files of the champion and this many "
                                   "newest versions; older ones are rebuilt from the ledger when needed")
    cache_mb: int = Field(10240, ge=0, description="cache/ (restored versions, downloaded registry models, "
                          "suite scores) kept under this size, least recently used removed first; files MLflow "
                          "serves as hard links and the champion's restore are never removed for it")


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1]
    name: str = Field(min_length=1)
    allowed_update_kinds: list[UpdateKind] = Field(min_length=1)
    approvals: Approvals
    gates: dict[str, dict[str, Any]] = Field(min_length=1, description="gate name -> its options")
    witnesses: list[str] = Field(default_factory=list, description="files (paths or file:// URLs) outside "
                                 "the store that receive every signed checkpoint of the ledger head")
    limits: Limits = Field(default_factory=Limits)
    training: Training = Field(default_factory=Training)
    storage: Storage = Field(default_factory=Storage)
    file_digest: str = Field(default="", description="sha256 of the policy file's bytes (set on load)")

    @field_validator("witnesses")
    @classmethod
    def _absolute(cls, values: list[str]) -> list[str]:
        for v in values:
            path = v.removeprefix("file://")
            if "://" in path or not Path(path).is_absolute():
                raise ValueError(f"witness {v!r}: give an absolute file path or a file:// URL")
        return values

    suites: dict[str, str] = Field(default_factory=dict, description="suite name -> sha256 of its file (set on load)")
    suite_files: dict[str, str] = Field(default_factory=dict, description="suite name -> its path (set on load)")
    digest: str = Field(default="", description="sha256 over the policy file and every suite file it uses")


def in_force(read_blob: Any, ref: dict[str, Any] | None, section: str) -> Any:
    """A section (limits, training, storage) of the ledger's policy in force (`ref`), or its defaults
    before any policy."""
    model = Policy.model_fields[section].default_factory
    if ref is None:
        return model()
    doc = yaml.safe_load(read_blob(ref["blob"])) or {}
    try:
        return model.model_validate(doc.get(section) or {})
    except ValidationError as exc:
        raise PolicyError(f"policy in force: {section}: {exc.errors()[0]['msg']}") from None


def composite_digest(file_digest: str, suites: dict[str, str]) -> str:
    """What a report and the ledger name as 'the policy': the file and every suite file it uses."""
    return sha256_hex(canonical_json({"policy": file_digest, "suites": dict(sorted(suites.items()))}))


def with_suites(policy: Policy, files: dict[str, Path]) -> Policy:
    """The policy with the digests of the suite files it uses folded into its digest."""
    try:
        suites = {n: sha256_hex(p.read_bytes()) for n, p in files.items()}
    except OSError as exc:
        raise PolicyError(f"cannot read suite file: {exc}") from None
    return policy.model_copy(update={"suites": suites, "suite_files": {n: str(p) for n, p in files.items()},
                                     "digest": composite_digest(policy.file_digest, suites)})


def _describe(err: ValidationError, path: Path) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {where}: {first['msg']}{more}"


def parse_policy(path: Path) -> Policy:
    """Parse and validate the policy's own fields; gate names are checked by audits.registry."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy is a YAML mapping")
    for computed in ("digest", "file_digest", "suites", "suite_files"):
        if computed in data:
            raise PolicyError(f"{path}: {computed}: is computed, not written")
    for name, opts in (data.get("gates") or {}).items():
        if opts is not None and not isinstance(opts, dict):
            raise PolicyError(f"{path}: gates.{name}: options must be a mapping")
    data["gates"] = {k: (v or {}) for k, v in (data.get("gates") or {}).items()}
    try:
        digest = sha256_hex(raw)
        return Policy(**data, file_digest=digest, digest=composite_digest(digest, {}))
    except ValidationError as exc:
        raise PolicyError(_describe(exc, path)) from None
