"""Approvals and rejections: signed statements over one proposal's report digest.

An approval names the report envelope it approves (its subject), so it cannot be
replayed onto another proposal or onto a later report. Counting returns who signed,
who is missing and the threshold, not a bare yes/no. The proposer's key never counts;
unknown, revoked and wrong-role keys are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from governance.errors import UsageError, VerificationError
from governance.keys import KeyInfo, KeyRing
from governance.signing import sign_envelope, statement, subject_digests, verify_envelope

Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class ApprovalStatus:
    threshold: int
    approved_by: tuple[str, ...] = ()
    rejected_by: tuple[str, ...] = ()
    refused: tuple[str, ...] = field(default=())  # "who: why" for envelopes that do not count

    @property
    def missing(self) -> int:
        return max(0, self.threshold - len(self.approved_by))

    @property
    def met(self) -> bool:
        return self.missing == 0 and not self.rejected_by

    def describe(self) -> str:
        signed = ", ".join(self.approved_by) or "nobody"
        text = f"approvals {len(self.approved_by)}/{self.threshold} (signed: {signed}; missing: {self.missing})"
        if self.rejected_by:
            text += f"; rejected by {', '.join(self.rejected_by)}"
        return text


def _check_signer(info: KeyInfo, proposer: str) -> None:
    if info.name == proposer:
        raise UsageError(f"key {info.name!r} proposed this update and cannot approve it")
    if info.revoked:
        raise UsageError(f"key {info.name!r} is revoked")
    if info.role != "approver":
        raise UsageError(f"key {info.name!r} has role {info.role!r}; only approver keys may approve or reject")


def sign_decision(keys: KeyRing, by: str, passphrase: str | None, proposal_id: str, proposer: str,
                  report_digest: str, decision: Decision, comment: str) -> bytes:
    info = keys.get(by)
    _check_signer(info, proposer)
    key = keys.private(by, passphrase)
    predicate = {"proposal": proposal_id, "decision": decision, "comment": comment, "approver": by,
                 "created": round(time.time(), 3)}
    return sign_envelope(statement({"report": report_digest}, "Approval/v1", predicate), key, info.keyid)


def count(envelopes: list[tuple[str, bytes]], keys: list[KeyInfo], proposal_id: str, proposer: str,
          report_digest: str, threshold: int) -> ApprovalStatus:
    """Tally decisions (where, envelope bytes) for this proposal's current report."""
    approved: dict[str, str] = {}
    rejected: dict[str, str] = {}
    refused: list[str] = []
    by_id = {k.keyid: k for k in keys}
    trusted = {k.keyid: k.public() for k in keys}
    for where, env in envelopes:
        try:
            keyid, body = verify_envelope(env, trusted, where=where)
            info = by_id[keyid]
            _check_signer(info, proposer)
            pred = body["predicate"]
            if subject_digests(body).get("report") != report_digest or pred.get("proposal") != proposal_id:
                raise VerificationError("signed for another proposal or an earlier report")
        except (UsageError, VerificationError) as exc:
            refused.append(str(exc) if where in str(exc) else f"{where}: {exc}")
            continue
        (approved if pred["decision"] == "approve" else rejected)[info.keyid] = info.name
    return ApprovalStatus(threshold, tuple(sorted(approved.values())), tuple(sorted(rejected.values())),
                          tuple(refused))
