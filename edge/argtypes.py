"""Range-checked argument types for the command lines: `--frames 0` or `--threads -3` is refused
with the option's name and the rule, never measured or silently clamped."""

from __future__ import annotations

from typing import Any, Callable


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(text)
    except ValueError:
        import argparse

        what = "whole number" if kind is int else "number"
        raise argparse.ArgumentTypeError(f"expected a {what}, found {text!r}") from None


def at_least(minimum: Any, kind: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse `type` accepting numbers >= `minimum`."""

    def parse(text: str) -> Any:
        import argparse

        value = _number(text, kind)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, found {value}")
        return value

    return parse


def above(minimum: float, kind: Callable[[str], Any] = float) -> Callable[[str], Any]:
    """An argparse `type` accepting numbers > `minimum`."""

    def parse(text: str) -> Any:
        import argparse

        value = _number(text, kind)
        if not value > minimum:
            raise argparse.ArgumentTypeError(f"must be > {minimum}, found {value}")
        return value

    return parse
