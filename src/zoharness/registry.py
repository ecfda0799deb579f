"""Cheap name registries: listing or validating names imports no implementation module."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType


class UnknownNameError(ValueError):
    pass


def check_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    if name in valid:
        return name
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(sorted(valid))}")


def load_module(kind: str, name: str, table: dict[str, str]) -> ModuleType:
    check_name(kind, name, tuple(table))
    return importlib.import_module(table[name])
