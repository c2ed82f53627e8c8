"""Policies shipped with weightgate, as YAML data: ``default`` (what ``weightgate init`` writes: no regression
suite, since none fits a model weightgate does not know), ``strict``, and ``world`` (the demo's: the default
with the demo world's regression suite)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def path(name: str) -> Path:
    """The file of a shipped policy, by name."""
    p = HERE / f"{name}.yaml"
    if not p.is_file():
        names = ", ".join(sorted(q.stem for q in HERE.glob("*.yaml")))
        raise FileNotFoundError(f"no shipped policy {name!r}; shipped: {names}")
    return p
