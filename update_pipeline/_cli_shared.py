"""What every command shares: global options, the store, passphrases, JSON output."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from governance.store import Store

state: dict[str, object] = {"debug": False, "home": None, "tracking_uri": None}


def store() -> Store:
    from governance.store import Store

    return Store.locate(state["home"])  # type: ignore[arg-type]


def tracking_uri() -> str | None:
    return state["tracking_uri"]  # type: ignore[return-value]


def passphrase(name: str, confirm: bool = False) -> str | None:
    """From the environment, else a prompt when a terminal is attached."""
    from governance.keys import passphrase_from_env

    value = passphrase_from_env(name)
    if value is None and sys.stdin.isatty():
        value = typer.prompt(f"Passphrase for key {name!r}", hide_input=True, confirmation_prompt=confirm)
    return value


DEVICE_HELP = "auto (a GPU when there is one), cpu or cuda."


def use_device(device: str | None) -> None:
    """Make `device` the one every model in this process loads on (checked now: cuda with no GPU is refused)."""
    import os

    if device:
        os.environ["WEIGHTGATE_DEVICE"] = device.lower()
    if device and device.lower() != "auto":
        from audits.lm import resolve_device

        resolve_device()


def emit(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


def service():  # noqa: ANN201
    """The service API over the store, unlocking keys with passphrases from the environment or a prompt."""
    from update_pipeline.service import Weightgate

    return Weightgate(store(), tracking_uri(), passphrase)
