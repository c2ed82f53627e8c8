"""The gates. A gate reads a proposal through a GateContext and returns a result; it changes nothing.

Gates are listed in ``audits.registry.GATES`` and configured by the policy.
"""

from audits.base import Gate, GateConfig, GateContext, Outcome
from audits.registry import GATES, build_gates, load_policy

__all__ = ["GATES", "Gate", "GateConfig", "GateContext", "Outcome", "build_gates", "load_policy"]
