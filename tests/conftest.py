"""Shared fixtures: a real store, real keys, a real small model trained here."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("WEIGHTGATE_GATE_PASSPHRASE", "test-gate-passphrase")

PASSPHRASES = {"alice": "alice-passphrase", "bob": "bob-passphrase", "carol": "carol-passphrase",
               "dan": "dan-passphrase", "olga": "olga-passphrase"}
MEMBERS = [("alice", "proposer"), ("bob", "approver"), ("carol", "auditor"), ("olga", "operator")]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def copy_store(src, dst):
    """A copy of a store whose MLflow database points at the copy's own artifacts (MLflow keeps absolute
    artifact locations: a plain copy would delete the original's files when it tombstones a version)."""
    import shutil
    import sqlite3

    shutil.copytree(src, dst)
    db = sqlite3.connect(dst / "mlflow.db")
    with db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for col in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                if col[2].upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(f'UPDATE "{table}" SET "{col[1]}" = replace("{col[1]}", ?, ?) '
                               f'WHERE "{col[1]}" LIKE ?', (str(src), str(dst), f"%{src}%"))
    db.close()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with the sha256 of its bytes: to show nothing was written."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from update_pipeline.world import build_base_model

    return build_base_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def update_records() -> list[dict]:
    from update_pipeline import world

    return world.fact_records(world.countries(n=27)[24:], source="curated")


@pytest.fixture(scope="session")
def update_data(tmp_path_factory: pytest.TempPathFactory, update_records: list[dict]) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "update.jsonl", update_records)


@pytest.fixture(scope="session")
def full_candidate(tmp_path_factory: pytest.TempPathFactory, base_model: Path, update_data: Path) -> Path:
    from governance.data import load_jsonl
    from update_pipeline.train import train_update

    out = tmp_path_factory.mktemp("cand") / "full"
    train_update(base_model, str(base_model), load_jsonl(update_data), out, epochs=1, seed=0)
    return out


@pytest.fixture(scope="session")
def lora_candidate(tmp_path_factory: pytest.TempPathFactory, base_model: Path, update_data: Path) -> Path:
    from governance.data import load_jsonl
    from update_pipeline.train import train_update

    out = tmp_path_factory.mktemp("cand") / "lora"
    train_update(base_model, str(base_model), load_jsonl(update_data), out, lora=True, epochs=1, seed=0)
    return out


@pytest.fixture(scope="session")
def _trusted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised store with keys and a trust root, made once; each test gets a copy (paths in a store
    are computed from where it lives, so a copy is a store of its own)."""
    from governance.store import Store
    from update_pipeline import world

    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = Store.locate(tmp_path_factory.mktemp("template") / "home")
    s.init(world.policy(tmp_path_factory.mktemp("policy") / "policy.yaml"))  # the world policy, its names allowed
    trusted_store(s)
    mp.undo()
    return s.home


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _trusted_template: Path):
    import shutil

    from governance.store import Store

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(_trusted_template, tmp_path / "home")
    return Store.locate(tmp_path / "home")


@pytest.fixture(scope="session")
def pg():
    """A private PostgreSQL cluster for the whole session (tests.servers)."""
    from tests.servers import postgres

    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def _pg_template(tmp_path_factory: pytest.TempPathFactory, pg) -> Path:
    """The trusted store of `_trusted_template`, its ledger in a PostgreSQL database named "template_store"."""
    from governance.store import Store
    from update_pipeline import world

    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path_factory.mktemp("pg-template")
    s = Store.locate(root / "home")
    s.init(world.policy(tmp_path_factory.mktemp("policy") / "policy.yaml"), ledger_url=pg.create("template_store"),
           blobs=(root / "home-shared-blobs").as_uri())
    trusted_store(s)
    mp.undo()
    return s.home


def pg_home(pg, template: Path, home: Path, database: str, source_db: str = "template_store") -> Path:
    """A copy of the store at `template` in `home`, its ledger a copy of `source_db` named `database` and its
    shared blobs a copy of the template's (a folder beside the home)."""
    import shutil
    from urllib.parse import urlparse

    shutil.copytree(template, home)
    config = json.loads((home / "config.json").read_text())
    blobs = home.parent / f"{home.name}-shared-blobs"
    source = Path(urlparse(config["blobs"]).path)
    if source.is_dir():
        shutil.copytree(source, blobs)
    config["ledger_url"] = pg.create(database, template=source_db)
    config["blobs"] = blobs.as_uri()
    (home / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return home


@pytest.fixture
def pg_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg, _pg_template: Path):
    """Like `store`, with its ledger in a PostgreSQL database of its own."""
    import re

    from governance.store import Store

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WEIGHTGATE_LEDGER_URL", raising=False)
    db = re.sub(r"\W", "_", request.node.name)[:50].lower()
    yield Store.locate(pg_home(pg, _pg_template, tmp_path / "home", db))
    pg.drop(db)


@pytest.fixture(scope="session")
def mlflow_team(pg, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An `mlflow server` for the session, its backend store in PostgreSQL, artifacts proxied."""
    from tests.servers import mlflow_server

    with mlflow_server(pg.create("mlflow"),
                       tmp_path_factory.mktemp("mlflow-artifacts")) as url:
        yield url


@pytest.fixture
def team_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg, mlflow_team):
    """A trusted store on the team's servers: its ledger in a PostgreSQL database of its own, lineage on the
    MLflow server under a registered model of its own (the server is shared by the session's tests)."""
    import re

    from governance.store import Store
    from update_pipeline import world

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WEIGHTGATE_LEDGER_URL", raising=False)
    db = "team_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    s = Store.locate(tmp_path / "home")
    s.init(world.policy(tmp_path / "policy.yaml"), tracking_uri=mlflow_team, ledger_url=pg.create(db),
           model_name=db.replace("_", "-"))
    yield trusted_store(s)
    pg.drop(db)


def trusted_store(s):
    """Keys for every role and a trust root v1 whose admin is dan: the store every flow test starts from."""
    from governance.keys import KeyRing
    from update_pipeline.service import Weightgate

    keys = KeyRing(s.keys_dir)
    keys.create("dan", "root", PASSPHRASES["dan"])
    for name, role in MEMBERS:
        keys.create(name, role, PASSPHRASES[name])
    Weightgate(s, passphrase=PASSPHRASES.get).trust_init(["dan"], MEMBERS)
    return s
