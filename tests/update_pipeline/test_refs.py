import pytest

from governance.errors import UsageError
from governance.lineage import Lineage
from update_pipeline import refs


def test_registry_reference_resolves_to_the_model_files(store, base_model):
    client = Lineage(store.tracking_uri(), store.artifacts_dir).client()
    exp = client.create_experiment("models", artifact_location=(store.artifacts_dir / "models").as_uri())
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(base_model), artifact_path="model")
    client.create_registered_model("outside-model")
    mv = client.create_model_version("outside-model", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("outside-model", "champion", mv.version)

    for ref in ("models:/outside-model@champion", f"models:/outside-model/{mv.version}"):
        folder = refs.resolve(ref, store)
        assert (folder / "model.safetensors").read_bytes() == (base_model / "model.safetensors").read_bytes()
        assert (folder / "config.json").is_file()


@pytest.mark.parametrize("ref, match", [
    ("models:/nope@champion", "unknown model reference"),
    ("ledger:champion", "the ledger holds no versions yet"),
    ("ledger:abc", "the ledger holds no versions yet"),
    ("/definitely/not/here", "unknown model reference"),
])
def test_unknown_references(store, ref, match):
    with pytest.raises(UsageError, match=match):
        refs.resolve(ref, store)
