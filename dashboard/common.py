"""What every page shares: the store, the keys, one-line errors, status colours."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from governance.errors import WeightgateError
from governance.keys import KeyInfo, KeyRing
from governance.store import Store

T = TypeVar("T")
COLOURS = {"pass": "green", "warn": "orange", "fail": "red", "error": "red", "not checked": "gray"}


def store() -> Store:
    """The store named by WEIGHTGATE_HOME (as for the command line), else ./.weightgate."""
    return Store.locate(os.environ.get("WEIGHTGATE_HOME") or None)


def keys(role: str | None = None) -> list[KeyInfo]:
    return [k for k in KeyRing(store().keys_dir).list() if not k.revoked and (role is None or k.role == role)]


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
