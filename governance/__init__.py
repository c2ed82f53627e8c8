"""weightgate's trust core: the records every weight update leaves behind.

The flow: a proposal (signed manifest of base, candidate, data) -> gates -> a signed
report -> approvals -> a ledger entry and promotion -> rollback or unlearning.
This package holds the records, the policy, keys and signing (in-toto statements in
DSSE envelopes), the content-addressed blob store, the proposal store and lineage in
MLflow. It imports nothing from the rest of weightgate.
"""

from governance.errors import (
    CheckFailed,
    InputError,
    NotAuthorized,
    PickleRefused,
    PolicyError,
    UsageError,
    VerificationError,
    WeightgateError,
)
from governance.store import Store

__all__ = ["CheckFailed", "InputError", "NotAuthorized", "PickleRefused", "PolicyError", "Store", "UsageError",
           "VerificationError", "WeightgateError"]
