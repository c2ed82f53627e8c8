"""What every page shares: the store, the keys, one-line errors, status colours."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from governance.errors import WeightgateError
from governance.keys import KeyRing
from governance.store import Store

T = TypeVar("T")
COLOURS = {"pass": "green", "warn": "orange", "fail": "red", "error": "red", "not checked": "gray"}


def store() -> Store:
    """The store named by WEIGHTGATE_HOME (as for the command line), else ./.weightgate."""
    return Store.locate(os.environ.get("WEIGHTGATE_HOME") or None)


def keys(*roles: str) -> dict[str, str]:
    """name -> role in the trust root in force, for the keys whose private key is in this keyring (gate key
    left out; a shared dashboard holds none). Keys the root does not list are shown as such: choosing one
    gets the refusal the command line prints."""
    from update_pipeline.service import Weightgate

    try:
        root = Weightgate(store()).root()
    except WeightgateError:
        root = None
    out = {}
    ring = KeyRing(store().keys_dir)
    for k in ring.list():
        if not ring.holds_private(k.name):
            continue
        listed = root.key(k.keyid) if root else None
        role = listed.role if listed else "not in the trust root"
        if role != "gate" and (not roles or role in roles or listed is None):
            out[k.name] = role
    return out


def service(passphrase: str | None, others: dict[str, str] | None = None):  # noqa: ANN201
    """The same service API the command line uses, unlocking keys with the passphrases typed on the page
    (`others`: name -> passphrase for a second key, e.g. the proposer of a replay)."""
    from update_pipeline.service import Weightgate

    return Weightgate(store(), passphrase=lambda name: (others or {}).get(name) or passphrase or None)


def signer_fields(label: str, roles: tuple[str, ...], key: str, command: str) -> tuple[str | None, str]:
    """A key (with its role in the trust root) and its passphrase; where none is here, the `command` that
    signs on a member's own machine."""
    names = keys(*roles)
    if not names:
        sign_elsewhere(command)
        return None, ""
    by = st.selectbox(label, list(names), key=f"{key}-by", format_func=lambda n: f"{n} ({names[n]})")
    return by, st.text_input("Passphrase", type="password", key=f"{key}-pass")


def sign_elsewhere(command: str) -> None:
    """Where this dashboard holds no key to sign with (a team's shared one never does): the command a member
    runs on their own machine, whose signed result shows here on the next reload."""
    st.info(f"No key here can sign this. Where yours is, run `{command}`: what it signs shows here when you "
            "reload. (No key yet? `weightgate keys create NAME --role ROLE`, then a root admin runs "
            "`weightgate trust add-key`.)")


def badge(status: str) -> str:
    return f":{COLOURS.get(status, 'gray')}-badge[{status}]"


def attempt(what: Callable[[], T]) -> T | None:
    """Run an action; a weightgate refusal is shown as the one-line error the command line prints."""
    try:
        return what()
    except WeightgateError as exc:
        st.error(f"{type(exc).__name__}: {exc}")
        return None


def chosen_proposal(ids: list[str], label: str = "Proposal") -> str | None:
    """A proposal picked in a select box, preselected from the page's ?proposal= query parameter."""
    if not ids:
        return None
    wanted = st.query_params.get("proposal")
    index = ids.index(wanted) if wanted in ids else 0
    pid = st.selectbox(label, ids, index=index)
    st.query_params["proposal"] = pid
    return pid


def confirm(phrase: str, key: str) -> bool:
    """A typed confirmation: the action's button is enabled only once `phrase` is typed exactly."""
    typed = st.text_input(f"Type **{phrase}** to confirm", key=key)
    return typed.strip() == phrase
