"""Lineage in MLflow: each proposal is a run; promoted versions become registered versions.

Runs live in the experiment ``weightgate/proposals``. Registered model versions
(governance.registry) use the store's model name, the alias ``champion`` and an alias
``ledger-N`` per ledger version. MLflow is imported only when lineage is written or read.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.registry import LEDGER_EXPERIMENT, Registry, ledger_alias

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

__all__ = ["EXPERIMENT", "LEDGER_EXPERIMENT", "Lineage", "ledger_alias"]

EXPERIMENT = "weightgate/proposals"
_MAX_PARAM = 6000


class Lineage(Registry):
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

    @staticmethod
    def _metrics(values: Mapping[str, float]) -> list[Any]:
        import math
        import re
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)  # names keep to what every MLflow store accepts
        return [Metric(re.sub(r"[^\w./\- ]", "_", k), float(v), now, 0) for k, v in values.items()
                if isinstance(v, (int, float)) and math.isfinite(v)]
