"""Typed option schemas of the metrics. Each metric declares its options as a
dataclass (``FVDOptions``, ``CLIPSimOptions``) beside its builder; the builder, the
run's start-up check and preflight all read that one declaration, so a misspelt or
mistyped option stops the run before anything is built."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, List, Mapping, Type, TypeVar

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from common.errors import InputError
from common.names import closest

T = TypeVar("T")


def options_schema(cls: Type[T]) -> Type[T]:
    """Decorator: a metric's options as a strictly typed dataclass (an int option refuses
    "8", a bool option refuses 1)."""
    return pydantic_dataclass(cls, config=ConfigDict(strict=True))


def option_names(schema: type) -> List[str]:
    return [f.name for f in fields(schema)]


def unknown_options(schema: type, options: Mapping[str, Any]) -> List[str]:
    """The keys of ``options`` the schema does not declare, each with a suggestion."""
    names = option_names(schema)
    out = []
    for key in options:
        if key not in names:
            hit = closest(key, names)
            out.append(f"'{key}'" + (f" (did you mean '{hit}'?)" if hit else ""))
    return out


def parse_options(schema: Type[T], options: Mapping[str, Any], metric: str) -> T:
    """``options`` as an instance of ``schema``; one ValueError naming every unknown key
    (with a suggestion) or every value of the wrong type."""
    unknown = unknown_options(schema, options)
    if unknown:
        raise InputError(f"{metric}: unknown option(s) {', '.join(unknown)}. "
                         f"Accepted: {', '.join(option_names(schema))}.")
    try:
        return schema(**options)
    except ValidationError as err:
        bad = "; ".join(f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg'].lower()}" for e in err.errors())
        raise InputError(f"{metric}: option {bad}.") from None
