"""The typed shape of what the ledger signs: trust roots, ledger entries, checkpoints.

One module, used by the writer (which builds a model and dumps it) and by the verifier
(which validates every entry it reads), so neither side guesses at string keys.
Unknown fields are refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from governance.errors import VerificationError

Role = Literal["root", "proposer", "approver", "operator", "auditor", "gate"]
Action = Literal["root", "policy", "genesis", "promote", "rollback", "forget", "forget_done", "revert", "report"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RootKey(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    role: Role
    public_key: str = Field(min_length=40, max_length=64, description="base64 of the raw Ed25519 key")


class Thresholds(_Strict):
    approvals: int = Field(1, ge=1, description="distinct approver signatures to promote")
    rollback: int = Field(1, ge=1, description="approver or operator signatures to roll back")
    root: int = Field(1, ge=1, description="root admin signatures to change the root or the policy")


class RootDoc(_Strict):
    """One version of the trust root: which key holds which role, and the thresholds."""

    type: Literal["weightgate.root/v1"] = "weightgate.root/v1"
    version: int = Field(ge=1)
    keys: dict[str, RootKey] = Field(description="key id (sha256 of the raw public key) -> key")
    thresholds: Thresholds
    created: float

    @model_validator(mode="after")
    def _consistent(self) -> RootDoc:
        import base64
        import hashlib

        names = [k.name for k in self.keys.values()]
        if len(set(names)) != len(names):
            raise ValueError("two keys share a name")
        for keyid, k in self.keys.items():
            if hashlib.sha256(base64.b64decode(k.public_key)).hexdigest() != keyid:
                raise ValueError(f"key {k.name}: its id is not the sha256 of its public key")
        admins = sum(k.role == "root" for k in self.keys.values())
        if admins < self.thresholds.root:
            raise ValueError(f"{admins} root key(s) cannot meet the root threshold {self.thresholds.root}")
        return self


class PolicyRef(_Strict):
    name: str
    digest: str = Field(description="sha256 over the policy file and every suite file it uses")
    blob: str = Field(description="the policy file's bytes in the blob store")
    suites: dict[str, str] = Field(default_factory=dict, description="suite name -> blob of its file")
    approvals: int = Field(1, ge=1, description="approvals the policy asks for (the root's threshold may ask more)")


class _Entry(_Strict):
    seq: int = Field(ge=1)
    prev: str | None
    created: float
    version: int | None
    champion: int | None


class RootEntry(_Entry):
    action: Literal["root"]
    root: RootDoc


class PolicyEntry(_Entry):
    action: Literal["policy"]
    policy: PolicyRef


class GenesisEntry(_Entry):
    action: Literal["genesis"]
    weights: dict[str, Any]
    source: str


class PromoteEntry(_Entry):
    action: Literal["promote"]
    parent: int
    weights: dict[str, Any]
    proposal: dict[str, Any]
    data: dict[str, Any]
    recipe: list[dict[str, Any]] | None


class RollbackEntry(_Entry):
    action: Literal["rollback"]
    from_: int = Field(alias="from")
    reason: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ForgetEntry(_Entry):
    """A data-subject request, and its intent: the update data re-encrypted without the records, the
    versions trained on them tombstoned from here on (never restored or served again), the champion
    moved to the newest version untouched by them, and the exact replay to build. Shredding follows;
    a ``forget_done`` entry naming this one says it finished."""

    action: Literal["forget"]
    removed: list[str]
    redacted: list[dict[str, Any]]
    affected: list[int] = Field(default_factory=list, description="versions whose data held the records")
    tombstoned: list[int] = Field(default_factory=list, description="versions trained on them, descendants included")
    start: int | None = None
    replayed: list[int] = Field(default_factory=list)
    method: Literal["exact", "approximate"] = Field("exact", description="approximate: the proposal is the old "
                                                    "champion minus the weight changes of `negated`, not a replay")
    negated: list[int] = Field(default_factory=list, description="versions whose weight change an approximate "
                               "forget subtracts")
    sweep: dict[str, str] | None = Field(None, description="sealed texts to search copies for; key shredded at the end")
    proposals: list[str] = Field(default_factory=list, description="unpromoted proposals it removes (they held the "
                                 "records or stand on a tombstoned version)")


class ForgetDoneEntry(_Entry):
    """Every copy of a forget's records shredded: old data keys destroyed, copies removed, tombstoned blobs
    and MLflow artifacts deleted."""

    action: Literal["forget_done"]
    forget: int = Field(ge=1, description="the forget entry this completes")
    shredded_keys: int = Field(ge=0)
    deleted_blobs: int = Field(ge=0)
    removed_proposals: list[str] = Field(default_factory=list)


class RevertEntry(_Entry):
    """A signed request to unlearn one update; the replay proposal's origin names this entry."""

    action: Literal["revert"]
    target: int
    method: Literal["exact", "approximate"]
    start: int | None
    replayed: list[int]


class ReportEntry(_Entry):
    """A gate report made for a proposal: its number in the proposal's sequence and its envelope's sha256.
    The newest recorded report of a proposal is the one in force; a recorded one whose file is gone fails
    verification, so deleting reports cannot bring an older one back."""

    action: Literal["report"]
    proposal_id: str = Field(pattern=r"^prop-[0-9a-f]{10}$")
    number: int = Field(ge=1)
    report: str = Field(pattern=r"^[0-9a-f]{64}$")
    verdict: Literal["pass", "fail"]


ENTRY_MODELS: dict[str, type[_Entry]] = {"root": RootEntry, "policy": PolicyEntry, "genesis": GenesisEntry,
                                         "promote": PromoteEntry, "rollback": RollbackEntry,
                                         "forget": ForgetEntry, "forget_done": ForgetDoneEntry,
                                         "revert": RevertEntry, "report": ReportEntry}


class Checkpoint(_Strict):
    """A signed statement of the ledger's head, published to witnesses outside the ledger database."""

    type: Literal["weightgate.checkpoint/v1"] = "weightgate.checkpoint/v1"
    seq: int = Field(ge=1)
    head: str = Field(min_length=64, max_length=64)
    root: str = Field(min_length=64, max_length=64, description="fingerprint of root version 1")
    champion: int | None
    created: float


def parse_entry(predicate: Any, where: str) -> _Entry:
    """Validate a ledger predicate against its action's model; raises VerificationError naming `where`."""
    action = predicate.get("action") if isinstance(predicate, dict) else None
    model = ENTRY_MODELS.get(action)  # type: ignore[arg-type]
    if model is None:
        raise VerificationError(f"{where}: unknown action {action!r}")
    try:
        return model.model_validate(predicate)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise VerificationError(f"{where}: malformed {action} entry ({loc}: {first['msg']})") from None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True)
