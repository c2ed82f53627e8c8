"""Approvals and rejections: signed statements over one proposal's report digest.

An approval names the report envelope it approves (its subject), so it cannot be
replayed onto another proposal or onto a later report. Counting returns who signed,
who is missing and the threshold, not a bare yes/no. Only keys the trust root in force
lists as approvers count, and never the proposer's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from governance.errors import NotAuthorized, UsageError, VerificationError
from governance.keys import Signer
from governance.signing import sign_envelope, statement, subject_digests, verify_signers
from governance.trust import Root

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


def sign_decision(root: Root, signer: Signer, proposal_id: str, proposer: str, report_digest: str,
                  decision: Decision, comment: str) -> bytes:
    """Refuse before signing what a verifier would not count: keys outside the root, other roles, the proposer."""
    root.allow("approve", [signer])
    if signer.name == proposer:
        raise NotAuthorized(f"key {signer.name!r} proposed this update and cannot approve it")
    predicate = {"proposal": proposal_id, "decision": decision, "comment": comment, "approver": signer.name,
                 "created": round(time.time(), 3)}
    return sign_envelope(statement({"report": report_digest}, "Approval/v1", predicate), signer.key, signer.keyid)


def count(envelopes: list[tuple[str, bytes]], root: Root, proposal_id: str, proposer: str,
          report_digest: str, threshold: int) -> ApprovalStatus:
    """Tally decisions (where, envelope bytes) for this proposal's current report, judged against `root`."""
    approved: set[str] = set()
    rejected: set[str] = set()
    refused: list[str] = []
    for where, env in envelopes:
        try:
            signed, body = verify_signers(env, root.public_keys(), where, f"a key of root v{root.version}")
            names = root.judge("approve", signed, where).signers
            pred = body["predicate"]
            if subject_digests(body).get("report") != report_digest or pred.get("proposal") != proposal_id:
                raise VerificationError("signed for another proposal or an earlier report")
            if proposer in names:
                raise VerificationError(f"key {proposer!r} proposed this update and cannot approve it")
        except (UsageError, VerificationError) as exc:
            refused.append(str(exc) if where in str(exc) else f"{where}: {exc}")
            continue
        (approved if pred.get("decision") == "approve" else rejected).add(names[0])
    return ApprovalStatus(threshold, tuple(sorted(approved)), tuple(sorted(rejected)), tuple(refused))
