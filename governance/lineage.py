"""Lineage in MLflow: each proposal is a run; promoted versions become registered versions.

Runs live in the experiment ``weightgate/proposals``. Registered model versions (next
step of the flow) use the store's model name and the alias ``champion``. MLflow is
imported only when lineage is written or read.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

EXPERIMENT = "weightgate/proposals"
LEDGER_EXPERIMENT = "weightgate/ledger"
_MAX_PARAM = 6000


class Lineage:
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

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, client: MlflowClient) -> str:
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return exp.experiment_id
        local = self.tracking_uri.startswith("sqlite:") or self.tracking_uri.startswith("file:")
        location = (self.artifacts_dir / "proposals").as_uri() if local else None
        return client.create_experiment(EXPERIMENT, artifact_location=location)

    def log_proposal(self, pid: str, params: Mapping[str, Any], metrics: Mapping[str, float],
                     artifacts: Mapping[str, Path], dataset: pd.DataFrame, dataset_digest: str,
                     dataset_source: str) -> str:
        """Create the proposal's run and return its id."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag, Param, RunTag

        client = self.client()
        run = client.create_run(self.experiment_id(client), run_name=pid,
                                tags={"weightgate.proposal": pid, "weightgate.kind": "proposal"})
        rid = run.info.run_id
        client.log_batch(rid, params=[Param(k, str(v)[:_MAX_PARAM]) for k, v in params.items()],
                         metrics=self._metrics(metrics), tags=[RunTag("weightgate.status", "proposed")])
        for name, path in artifacts.items():
            client.log_artifact(rid, str(path), artifact_path=name)
        with warnings.catch_warnings():  # MLflow hints about integer columns and source types
            warnings.simplefilter("ignore")
            ds = mlflow.data.from_pandas(dataset, source=dataset_source, name=f"{pid}-data",
                                         digest=dataset_digest[:32])._to_mlflow_entity()
        client.log_inputs(rid, [DatasetInput(ds, tags=[
            InputTag("mlflow.data.context", "training"),
            InputTag("weightgate.merkle_root", dataset_digest)])])
        client.set_terminated(rid, "FINISHED")
        return rid

    def log_report(self, run_id: str, report: Mapping[str, Any], envelope: Path, report_json: Path) -> None:
        from mlflow.entities import RunTag

        client = self.client()
        metrics: dict[str, float] = {}
        for gate in report["gates"]:
            metrics[f"gate.{gate['name']}.passed"] = float(gate["status"] in ("pass", "warn"))
            for k, v in gate["metrics"].items():
                metrics[f"gate.{gate['name']}.{k}"] = v
        metrics["check.passed"] = float(report["verdict"] == "pass")
        client.log_batch(run_id, metrics=self._metrics(metrics),
                         tags=[RunTag("weightgate.verdict", report["verdict"]),
                               RunTag("weightgate.status", "checked")])
        client.log_artifact(run_id, str(envelope), artifact_path="reports")
        client.log_artifact(run_id, str(report_json), artifact_path="reports")

    def registered_versions(self, model_name: str) -> dict[int, str]:
        """ledger version -> registered model version, from the versions' tags."""
        return {v: mv.version for v, mv in self.model_versions(model_name).items()}

    def register_version(self, model_name: str, ledger_version: int, folder: Path | None, tags: Mapping[str, str],
                         proposal_run: str | None, adapter: Path | None = None) -> str:
        """Register a ledger version as a model version, its files logged as an MLflow transformers model
        (`folder`), or none (released: the ledger rebuilds them when they are needed). A LoRA update's PEFT
        adapter folder (`adapter`) is logged beside it as the run's artifact ``adapter/``; `tags` then name
        its base (weightgate.base_model_version)."""
        client = self.client()
        self.ensure_model(model_name)
        exp = client.get_experiment_by_name(LEDGER_EXPERIMENT)
        local = self.tracking_uri.startswith(("sqlite:", "file:"))
        exp_id = exp.experiment_id if exp else client.create_experiment(
            LEDGER_EXPERIMENT, artifact_location=(self.artifacts_dir / "ledger").as_uri() if local else None)
        run_tags = {"weightgate.ledger_version": str(ledger_version), "weightgate.kind": "ledger-version"}
        if proposal_run:
            run_tags["weightgate.proposal_run"] = proposal_run
        run = client.create_run(exp_id, run_name=f"ledger-v{ledger_version}", tags=run_tags)
        if folder is not None:
            self._log_model(run.info.run_id, folder, f"ledger:{ledger_version}")
        if adapter is not None:
            client.log_artifacts(run.info.run_id, str(adapter), artifact_path="adapter")
        client.set_terminated(run.info.run_id, "FINISHED")
        mv = client.create_model_version(model_name, f"runs:/{run.info.run_id}/model", run.info.run_id,
                                         tags={"weightgate.ledger_version": str(ledger_version),
                                               "weightgate.files": "present" if folder else "released", **tags})
        return mv.version

    def _log_model(self, run_id: str, folder: Path, source: str) -> None:
        import tempfile

        from governance import mlflow_model

        local = self._local_artifacts(run_id)
        if local is not None:  # hard links into MLflow's own folder: no second copy of the bytes
            local.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(local / "model", ignore_errors=True)
            with tempfile.TemporaryDirectory(dir=local.parent) as tmp:
                mlflow_model.write(folder, Path(tmp) / "model", source).rename(local / "model")
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(self.artifact_uri(run_id), tracking_uri=self.tracking_uri)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            repo.log_artifacts(str(mlflow_model.write(folder, Path(tmp) / "m", source)), "model")

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

    def put_files(self, model_name: str, mv: Any, folder: Path) -> None:
        """Log a registered version's files again (rebuilt from the ledger)."""
        self._log_model(mv.run_id, folder, f"ledger:{mv.tags.get('weightgate.ledger_version')}")
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

    def delete_run_artifacts(self, run_id: str, path: str) -> None:
        """Delete a run's artifacts under `path` (nothing when the run is gone)."""
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        client = self.client()
        try:
            uri = client.get_run(run_id).info.artifact_uri
        except MlflowException:
            return
        get_artifact_repository(uri, tracking_uri=self.tracking_uri).delete_artifacts(path)

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
            client.create_registered_model(model_name, description="Versions promoted through weightgate's ledger")

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

    @staticmethod
    def _metrics(values: Mapping[str, float]) -> list[Any]:
        import math
        import re
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)  # names keep to what every MLflow store accepts
        return [Metric(re.sub(r"[^\w./\- ]", "_", k), float(v), now, 0) for k, v in values.items()
                if isinstance(v, (int, float)) and math.isfinite(v)]
