"""Model references (REF): a local model folder, ``models:/NAME@ALIAS`` or
``models:/NAME/VERSION`` from the MLflow registry, or ``ledger:VERSION`` / ``ledger:champion``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from governance.errors import UsageError
from governance.store import Store


def resolve(ref: str, store: Store | None = None, tracking_uri: str | None = None) -> Path:
    """A local folder holding the referenced model's files."""
    if ref.startswith("models:/"):
        if store is None:
            raise UsageError(f"{ref}: a registry reference needs a store")
        return _from_registry(ref, store, tracking_uri)
    if ref.startswith("ledger:"):
        raise UsageError(f"{ref}: the ledger holds no promoted versions yet")
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise UsageError(f"unknown model reference {ref!r}: not a folder, models:/ or ledger: reference")
    return path


def _from_registry(ref: str, store: Store, tracking_uri: str | None) -> Path:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from governance.lineage import Lineage

    client = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir).client()
    spec = ref.removeprefix("models:/")
    try:
        if "@" in spec:
            name, alias = spec.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = spec.rsplit("/", 1)
            mv = client.get_model_version(name, version)
        dest = store.cache_dir / "registry" / f"{mv.name}-v{mv.version}"
        if not dest.is_dir():
            uri = client.get_model_version_download_uri(mv.name, mv.version)
            with tempfile.TemporaryDirectory(dir=store.cache_dir) as tmp:
                got = download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=client.tracking_uri)
                dest.parent.mkdir(parents=True, exist_ok=True)
                Path(got).replace(dest)
    except (MlflowException, ValueError) as exc:
        raise UsageError(f"unknown model reference {ref!r}: {str(exc).splitlines()[0]}") from None
    return dest
