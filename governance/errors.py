"""One error tree with one root; the CLI catches :class:`WeightgateError` only.

    WeightgateError                 (exit 2 unless a subclass says otherwise)
     +-- UsageError                 bad usage: unknown reference, missing key, wrong option
     +-- InputError                 bad input: unreadable file, malformed JSONL, bad weights
     |    +-- PickleRefused         a pickle-based weight file (never unpickled)
     +-- PolicyError                a policy that does not parse or names an unknown gate
     +-- VerificationError          (exit 1) a signature, digest or chain does not verify
     |    +-- NotAuthorized         a key the trust root does not allow for this action
     +-- CheckFailed                (exit 1) a gate failed; the report is still written
"""

from __future__ import annotations


class WeightgateError(Exception):
    """Root of every error weightgate raises on purpose."""

    exit_code = 2


class UsageError(WeightgateError):
    """The command was used wrongly: unknown reference, missing key, bad option."""


class InputError(WeightgateError):
    """An input file is unreadable or malformed. The message names the file and place."""


class PickleRefused(InputError):
    """A pickle-based weight file; the message names the imports its pickle would run."""


class PolicyError(WeightgateError):
    """The policy does not parse, or names an unknown gate or option."""


class VerificationError(WeightgateError):
    """Something signed or hashed does not verify: a signature, digest or chain."""

    exit_code = 1


class NotAuthorized(VerificationError):
    """The trust root in force does not let these keys do this: not listed, wrong role, too few."""


class CheckFailed(WeightgateError):
    """The thing examined is bad: a gate failed or approvals are missing."""

    exit_code = 1
