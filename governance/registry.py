"""The MLflow model registry half of the lineage: one registered version per ledger version.

MLflow numbers a registered model's versions itself, from 1, and never reuses a number; the ledger
numbers its versions from 0 (the genesis). They are not the same numbers, and cannot be made so (a
version tombstoned before it was registered is never registered, a registry restored from a backup
goes on counting), so every registered version carries its ledger version where users look: the tag
``weightgate.ledger_version``, the alias ``ledger-N``, its description and its run's name
(``ledger:N promote PROPOSAL``). MLflow is imported only when the registry is written or read.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

LEDGER_EXPERIMENT = "weightgate/ledger"


def ledger_alias(version: int) -> str:
    """The alias naming ledger version `version` (``models:/NAME@ledger-3``)."""
    return f"ledger-{version}"


class Registry:
    def __init__(self, tracking_uri: str, artifacts_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifacts_dir = artifacts_dir
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI (fixed when the run is made)

    def artifact_uri(self, run_id: str) -> str:
        if run_id not in self._artifact_uris:
            self._artifact_uris[run_id] = self.client().get_run(run_id).info.artifact_uri
        return self._artifact_uris[run_id]

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        from governance.mlflow_store import prepare

        prepare(self.tracking_uri, self.artifacts_dir)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def registered_versions(self, model_name: str) -> dict[int, str]:
        """ledger version -> registered model version, from the versions' tags."""
        return {v: mv.version for v, mv in self.model_versions(model_name).items()}

    def register_version(self, model_name: str, ledger_version: int, folder: Path | None, tags: Mapping[str, str],
                         proposal_run: str | None, adapter: Path | None = None, *, run_name: str | None = None,
                         run_tags: Mapping[str, str] | None = None, description: str = "",
                         dataset: Mapping[str, Any] | None = None, omit: frozenset[str] = frozenset()) -> Any:
        """Register a ledger version as a model version, its files logged as an MLflow transformers model
        (`folder`, less the names in `omit`), or none (released: the ledger rebuilds them when they are
        needed). A LoRA update's PEFT adapter folder (`adapter`) is logged beside it as the run's artifact
        ``adapter/``; `tags` then name its base (weightgate.base_model_version). `dataset` (name, digest,
        source, tags) is logged as the run's training dataset input. Returns the registered version."""
        client = self.client()
        self.ensure_model(model_name)
        exp = client.get_experiment_by_name(LEDGER_EXPERIMENT)
        local = self.tracking_uri.startswith(("sqlite:", "file:"))
        exp_id = exp.experiment_id if exp else client.create_experiment(
            LEDGER_EXPERIMENT, artifact_location=(self.artifacts_dir / "ledger").as_uri() if local else None)
        tags_run = {"weightgate.ledger_version": str(ledger_version), "weightgate.kind": "ledger-version",
                    **(run_tags or {}), **({"mlflow.note.content": description} if description else {})}
        if proposal_run:
            tags_run["weightgate.proposal_run"] = proposal_run
        run = client.create_run(exp_id, run_name=run_name or f"ledger:{ledger_version}", tags=tags_run)
        if dataset is not None:
            self._log_dataset(run.info.run_id, dataset)
        if folder is not None:
            self._log_model(run.info.run_id, folder, f"ledger:{ledger_version}", omit)
        if adapter is not None:
            client.log_artifacts(run.info.run_id, str(adapter), artifact_path="adapter")
        client.set_terminated(run.info.run_id, "FINISHED")
        mv = client.create_model_version(model_name, f"runs:/{run.info.run_id}/model", run.info.run_id,
                                         tags={"weightgate.ledger_version": str(ledger_version),
                                               "weightgate.files": "present" if folder else "released", **tags},
                                         description=description or None)
        client.set_registered_model_alias(model_name, ledger_alias(ledger_version), mv.version)
        return mv

    def _log_dataset(self, run_id: str, dataset: Mapping[str, Any]) -> None:
        """A dataset input that names the data (name, digest, source) and holds none of it."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # MLflow hints that a local path could be read two ways
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(dataset["source"])
        ds = MetaDataset(source, name=dataset["name"], digest=dataset["digest"][:32])._to_mlflow_entity()
        tags = [InputTag("mlflow.data.context", "training"),
                *(InputTag(k, str(v)) for k, v in dataset.get("tags", {}).items())]
        self.client().log_inputs(run_id, [DatasetInput(ds, tags=tags)])

    def _log_model(self, run_id: str, folder: Path, source: str, omit: frozenset[str] = frozenset()) -> None:
        import tempfile

        from governance import mlflow_model

        local = self._local_artifacts(run_id)
        if local is not None:  # hard links into MLflow's own folder: no second copy of the bytes
            local.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(local / "model", ignore_errors=True)
            with tempfile.TemporaryDirectory(dir=local.parent) as tmp:
                mlflow_model.write(folder, Path(tmp) / "model", source, omit).rename(local / "model")
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(self.artifact_uri(run_id), tracking_uri=self.tracking_uri)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            repo.log_artifacts(str(mlflow_model.write(folder, Path(tmp) / "m", source, omit)), "model")

    def _local_artifacts(self, run_id: str) -> Path | None:
        """A run's artifact folder when MLflow's artifact store is a local folder."""
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        uri = self.artifact_uri(run_id)
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            return None
        return Path(url2pathname(parsed.path) if parsed.scheme else uri)

    def has_files(self, mv: Any) -> bool:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        local = self._local_artifacts(mv.run_id)
        if local is not None:
            return (local / "model").is_dir() and any((local / "model").iterdir())
        return bool(get_artifact_repository(self.artifact_uri(mv.run_id), tracking_uri=self.tracking_uri)
                    .list_artifacts("model"))

    def put_files(self, model_name: str, mv: Any, folder: Path, omit: frozenset[str] = frozenset()) -> None:
        """Log a registered version's files again (rebuilt from the ledger), less the names in `omit`."""
        self._log_model(mv.run_id, folder, f"ledger:{mv.tags.get('weightgate.ledger_version')}", omit)
        self.client().set_model_version_tag(model_name, mv.version, "weightgate.files", "present")

    def release_files(self, model_name: str, mv: Any) -> None:
        """Delete a registered version's files from MLflow's artifact store; the ledger keeps them."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        get_artifact_repository(self.artifact_uri(mv.run_id), tracking_uri=self.tracking_uri).delete_artifacts("model")
        self.client().set_model_version_tag(model_name, mv.version, "weightgate.files", "released")

    def model_versions(self, model_name: str) -> dict[int, Any]:
        """ledger version -> its registered model version (with tags)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client().search_model_versions(f"name = '{model_name}'")
        except MlflowException:
            return {}
        return {int(mv.tags["weightgate.ledger_version"]): mv for mv in found
                if str(mv.tags.get("weightgate.ledger_version", "")).isascii()
                and str(mv.tags.get("weightgate.ledger_version", "")).isdigit()}

    def tombstone(self, model_name: str, ledger_version: int, reason: str) -> None:
        """Delete a registered version's files from MLflow's artifact store and tag it with why; the version
        record stays, so the lineage still shows it existed."""
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        client = self.client()
        try:
            found = client.search_model_versions(f"name = '{model_name}'")
        except MlflowException:
            return
        for mv in found:
            if mv.tags.get("weightgate.ledger_version") != str(ledger_version):
                continue
            repo = get_artifact_repository(client.get_run(mv.run_id).info.artifact_uri, tracking_uri=self.tracking_uri)
            for path in ("model", "adapter"):
                repo.delete_artifacts(path)
            client.set_model_version_tag(model_name, mv.version, "weightgate.tombstoned", reason)

    def set_alias(self, model_name: str, alias: str, registered_version: str) -> None:
        self.client().set_registered_model_alias(model_name, alias, registered_version)

    def ensure_model(self, model_name: str) -> None:
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            client.create_registered_model(model_name, description="Versions promoted through weightgate's ledger "
                                           "(registered version numbers are MLflow's; each version's ledger "
                                           "version is its tag weightgate.ledger_version and its alias ledger-N)")

    def set_model_tag(self, model_name: str, key: str, value: str) -> None:
        self.ensure_model(model_name)
        self.client().set_registered_model_tag(model_name, key, value)

    def model_tags(self, model_name: str) -> dict[str, str] | None:
        """The registered model's tags, or None when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client().get_registered_model(model_name).tags)
        except MlflowException:
            return None

    def alias_version(self, model_name: str, alias: str) -> Any:
        """The model version an alias points at, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None

    def version_file_digests(self, mv: Any, dest: Path) -> dict[str, str]:
        """sha256 of every version file a registered model version serves (hashed where they lie when MLflow's
        artifact store is a local folder, else downloaded into `dest`); raises VerificationError when its
        folder holds anything but the version's files laid out as an MLflow transformers model."""
        import hashlib

        from governance import mlflow_model
        from governance.errors import VerificationError

        local = self._local_artifacts(mv.run_id)
        if local is not None:
            folder = local / "model"
        else:
            folder = Path(self.client().download_artifacts(mv.run_id, "model", str(dest))) \
                if self.has_files(mv) else dest / "none"
        if not folder.is_dir():
            return {}  # released: it serves nothing
        try:
            served = mlflow_model.served_files(folder)
        except ValueError as exc:
            raise VerificationError(f"registered version {mv.version}: {exc}") from None
        out = {}
        for name, p in served.items():
            with open(p, "rb") as fh:
                out[name] = hashlib.file_digest(fh, "sha256").hexdigest()
        return out
