"""The embedded default store under WEIGHTGATE_HOME (default ./.weightgate).

    .weightgate/
      config.json        tracking URI, registered model name
      policy.yaml        the policy in force (a copy of policies/default.yaml at init)
      mlflow.db          MLflow tracking store and model registry (SQLite)
      ledger.db          the hash-chained ledger and the per-update data keys
      mlartifacts/       MLflow artifacts
      keys/              public key records and encrypted private keys
      proposals/ID/      manifest, signed envelopes, data, gate reports
      blobs/sha256/      content-addressed weights and deltas
      cache/             built base models and downloaded references
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from governance.errors import UsageError

DEFAULT_MODEL_NAME = "weightgate-model"
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class Store:
    home: Path

    @classmethod
    def locate(cls, home: str | os.PathLike[str] | None = None) -> Store:
        raw = home or os.environ.get("WEIGHTGATE_HOME") or ".weightgate"
        return cls(Path(raw).expanduser().resolve())

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def proposals_dir(self) -> Path:
        return self.home / "proposals"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs" / "sha256"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def policy_path(self) -> Path:
        return self.home / "policy.yaml"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def initialized(self) -> bool:
        return (self.home / "config.json").is_file()

    def config(self) -> dict[str, str]:
        if not self.initialized:
            raise UsageError(f"no weightgate store at {self.home}: run 'weightgate init' first")
        try:
            config = json.loads((self.home / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.home / 'config.json'}: unreadable ({str(exc)[:80]})") from None
        if not isinstance(config, dict):
            raise UsageError(f"{self.home / 'config.json'}: not a JSON object")
        return config

    def tracking_uri(self, override: str | None = None) -> str:
        """--tracking-uri, then MLFLOW_TRACKING_URI, then the store's own SQLite database."""
        return (override or os.environ.get("MLFLOW_TRACKING_URI")
                or self.config().get("tracking_uri") or f"sqlite:///{self.home / 'mlflow.db'}")

    @property
    def ledger_url(self) -> str:
        """WEIGHTGATE_LEDGER_URL, then the store's config, then SQLite in the store."""
        return (os.environ.get("WEIGHTGATE_LEDGER_URL") or self.config().get("ledger_url")
                or f"sqlite:///{self.home / 'ledger.db'}")

    @property
    def lock_path(self) -> Path:
        return self.home / "ledger.lock"

    @property
    def model_name(self) -> str:
        return self.config().get("model_name", DEFAULT_MODEL_NAME)

    def init(self, default_policy: Path, tracking_uri: str | None = None) -> bool:
        """Create the store; returns False when it already existed (nothing is overwritten)."""
        if self.initialized:
            return False
        for d in (self.keys_dir, self.proposals_dir, self.blobs_dir, self.cache_dir, self.artifacts_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.policy_path.exists():
            shutil.copyfile(default_policy, self.policy_path)
        config = {"model_name": DEFAULT_MODEL_NAME}
        if tracking_uri:
            config["tracking_uri"] = tracking_uri
        tmp = self.home / "config.json.tmp"
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(self.home / "config.json")
        return True
