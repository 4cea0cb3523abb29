"""Names a user types: did-you-mean suggestions and boolean environment flags."""
from __future__ import annotations

import difflib
import os
from typing import Iterable, Optional


def closest(name: str, options: Iterable[str]) -> Optional[str]:
    """The option closest to a mistyped ``name`` (difflib's ratio), or None."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return close[0] if close else None


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest option, or ``""``: ends an error sentence."""
    hit = closest(name, options)
    return f" Did you mean '{hit}'?" if hit else ""


_FLAG_ON = ("1", "ON", "YES", "TRUE")
_FLAG_OFF = ("", "0", "OFF", "NO", "FALSE")


def env_flag(name: str) -> bool:
    """A boolean environment variable parsed as huggingface_hub parses its own
    (1 / true / yes / on, any case)."""
    return os.environ.get(name, "").strip().upper() in _FLAG_ON


def env_flag_problem(name: str) -> Optional[str]:
    """A boolean environment variable set to neither an on nor an off word: the
    libraries would read it as off without a word (HF_HUB_OFFLINE=banana is online)."""
    value = os.environ.get(name)
    if value is None or value.strip().upper() in _FLAG_ON + _FLAG_OFF:
        return None
    return (f"{name}={value!r} is neither on nor off: set {name}=1 (or true/yes/on) to turn it on, {name}=0 "
            f"(or false/no/off, or unset it) to turn it off.")
