"""The embedded default store under WEIGHTGATE_HOME (default ./.weightgate).

    .weightgate/
      config.json        tracking URI (always recorded; "tracking": "embedded" for mlflow.db here),
                         ledger URL (a team's servers), registered model name
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
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import UsageError

if TYPE_CHECKING:
    from governance.blobs import BlobStore
    from governance.shared import SharedFiles

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

    @property
    def embedded_tracking_uri(self) -> str:
        """The store's own MLflow tracking store: SQLite in the store."""
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def recorded_tracking_uri(self) -> str | None:
        """The tracking URI the store's config names (its own SQLite when it says "embedded", wherever the store
        was moved or copied to); None for a store made before config.json recorded it."""
        config = self.config()
        return self.embedded_tracking_uri if config.get("tracking") == "embedded" else config.get("tracking_uri")

    def tracking_uri(self, override: str | None = None) -> str:
        """The tracking store config.json records; --tracking-uri or MLFLOW_TRACKING_URI naming another one is
        refused (it would register versions and move the alias where nobody else looks, and the ledger's
        witness there would fall behind). A store whose config records none uses the one named, else its own
        SQLite database."""
        from governance.mlflow_store import same_uri

        named = override or os.environ.get("MLFLOW_TRACKING_URI")
        configured = self.recorded_tracking_uri()
        if configured and named and not same_uri(named, configured):
            if self.team:
                raise UsageError(f"this team store's tracking server is {configured}, not {named} "
                                 "(--tracking-uri or MLFLOW_TRACKING_URI): unset it")
            raise UsageError(f"this store's MLflow tracking store is {configured} (its config.json), not {named} "
                             "(--tracking-uri or MLFLOW_TRACKING_URI): unset it, or make a store for that one "
                             "with 'weightgate init --tracking-uri URI' in another home")
        return configured or named or self.embedded_tracking_uri

    @property
    def ledger_url(self) -> str:
        """WEIGHTGATE_LEDGER_URL, then the store's config, then SQLite in the store."""
        return (os.environ.get("WEIGHTGATE_LEDGER_URL") or self.config().get("ledger_url")
                or f"sqlite:///{self.home / 'ledger.db'}")

    @property
    def team(self) -> bool:
        """Whether the ledger is on a database server: proposals and blobs then live on the team's servers,
        and this folder holds the member's keys, configuration and caches."""
        return not self.ledger_url.startswith("sqlite")

    def blobs(self) -> BlobStore:
        """The blob store: the local folder, backed by the team's artifact store when one is configured."""
        from governance.blobs import BlobStore
        from governance.shared import BlobRemote

        uri = self.config().get("blobs")
        if uri is None and self.team:
            raise UsageError(f"{self.home / 'config.json'}: a store whose ledger is on a database server needs "
                             "'blobs' (where every member reaches the weights): run 'weightgate init' for it")
        return BlobStore(self.blobs_dir, BlobRemote(uri, self.tracking_uri()) if uri else None)

    def shared_files(self) -> SharedFiles | None:
        from governance.shared import team_files

        return team_files(self.ledger_url, self.home)

    @property
    def lock_path(self) -> Path:
        return self.home / "ledger.lock"

    @property
    def model_name(self) -> str:
        return self.config().get("model_name", DEFAULT_MODEL_NAME)

    def init(self, default_policy: Path, tracking_uri: str | None = None, ledger_url: str | None = None,
             blobs: str | None = None, model_name: str = DEFAULT_MODEL_NAME,
             root_fingerprint: str | None = None) -> bool:
        """Create the store; returns False when it already existed (nothing is overwritten). A team store
        (its ledger on a database server) keeps its blobs where every member reaches them: `blobs`, by
        default the tracking server's proxied artifacts."""
        if root_fingerprint is not None:  # what 'trust init' printed: a ledger under another root is refused
            if not re.fullmatch(r"[0-9a-f]{64}", root_fingerprint.lower()):
                raise UsageError(f"--root-fingerprint {root_fingerprint!r}: not a trust root fingerprint (64 hex "
                                 "digits, as 'weightgate trust init' and 'trust show' print it)")
            root_fingerprint = root_fingerprint.lower()
        if self.initialized:  # settings other than the store's are refused, not ignored; a first pin is added
            asked = {"tracking_uri": tracking_uri, "ledger_url": ledger_url, "blobs": blobs,
                     "root_fingerprint": root_fingerprint,
                     "model_name": model_name if model_name != DEFAULT_MODEL_NAME else None}
            from governance.mlflow_store import same_uri

            config, recorded = self.config(), self.recorded_tracking_uri()
            differ = sorted(k for k, v in asked.items() if v and (
                not (recorded and same_uri(v, recorded)) if k == "tracking_uri" else
                config.get(k) != v and not (k == "root_fingerprint" and k not in config)))
            if differ:
                raise UsageError(f"{self.home} is already a store, with another {', '.join(differ)}: init never "
                                 "changes a store (make a new home, or edit its config.json)")
            if root_fingerprint and "root_fingerprint" not in config:  # pinning once the admins have a root
                self.write_config({**config, "root_fingerprint": root_fingerprint})
            return False
        config = {"model_name": model_name}
        if root_fingerprint is not None:
            config["root_fingerprint"] = root_fingerprint
        if ledger_url and not ledger_url.startswith("sqlite"):
            from governance.shared import default_blobs_uri

            blobs = blobs or default_blobs_uri(tracking_uri or "", model_name)
            if blobs is None:
                raise UsageError("a team store (--ledger-url) needs --tracking-uri http://... or --blobs URI: "
                                 "its weights must be reachable from every member")
        for d in (self.keys_dir, self.proposals_dir, self.blobs_dir, self.cache_dir, self.artifacts_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.policy_path.exists():
            shutil.copyfile(default_policy, self.policy_path)
        from governance.mlflow_store import prepare, same_uri

        config["tracking_uri"] = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or self.embedded_tracking_uri
        if same_uri(config["tracking_uri"], self.embedded_tracking_uri):
            config |= {"tracking_uri": self.embedded_tracking_uri, "tracking": "embedded"}
            prepare(self.embedded_tracking_uri, self.artifacts_dir)  # before any MLflow client makes it
        if ledger_url:
            config["ledger_url"] = ledger_url
        if blobs:
            config["blobs"] = blobs
        self.write_config(config)
        return True

    def write_config(self, config: dict[str, str]) -> None:
        """Replace config.json whole (a kill leaves the old file or the new one)."""
        tmp = self.home / "config.json.tmp"
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(self.home / "config.json")
