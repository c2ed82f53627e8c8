"""Model references (REF): a local model folder, ``models:/NAME@ALIAS`` or
``models:/NAME/VERSION`` from the MLflow registry, or ``ledger:VERSION`` / ``ledger:champion``."""

from __future__ import annotations

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
        if store is None:
            raise UsageError(f"{ref}: a ledger reference needs a store")
        return _from_ledger(ref, store)
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise UsageError(f"unknown model reference {ref!r}: not a folder, models:/ or ledger: reference")
    return path


def pin(ref: str, store: Store, tracking_uri: str | None = None) -> str:
    """The same reference, made immune to later moves: ledger:champion -> ledger:N, @alias -> /VERSION."""
    if ref == "ledger:champion":
        from governance.ledger import Ledger, champion

        current = champion(Ledger.of(store).entries())
        return f"ledger:{current}" if current is not None else ref
    if ref.startswith("models:/") and "@" in ref:
        from governance.lineage import Lineage

        name, alias = ref.removeprefix("models:/").split("@", 1)
        client = Lineage(store.tracking_uri(tracking_uri), store.artifacts_dir).client()
        return f"models:/{name}/{client.get_model_version_by_alias(name, alias).version}"
    return ref


def _from_ledger(ref: str, store: Store) -> Path:
    from governance.ledger import Ledger, champion
    from update_pipeline.versions import restore_version

    entries = Ledger.of(store).entries()
    spec = ref.removeprefix("ledger:")
    if champion(entries) is None:
        raise UsageError(f"{ref}: the ledger holds no versions yet")
    if spec == "champion":
        return restore_version(store, entries, champion(entries))
    if not (spec.isascii() and spec.isdigit()):
        raise UsageError(f"unknown model reference {ref!r}: use ledger:VERSION or ledger:champion")
    return restore_version(store, entries, int(spec))


def _from_registry(ref: str, store: Store, tracking_uri: str | None) -> Path:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from governance.lineage import Lineage
    from update_pipeline.scratch import scratch

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
            with scratch(store, f"download-{mv.name}-v{mv.version}") as tmp:  # removed on any exit
                got = download_artifacts(artifact_uri=uri, dst_path=str(tmp), tracking_uri=client.tracking_uri)
                dest.parent.mkdir(parents=True, exist_ok=True)
                Path(got).replace(dest)
    except (MlflowException, ValueError) as exc:
        raise UsageError(f"unknown model reference {ref!r}: {str(exc).splitlines()[0]}") from None
    from update_pipeline.cache_gc import used

    return used(dest)  # least recently used goes first when the cache is over its budget
