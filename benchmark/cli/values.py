"""Parsing command-line values: each bad value is a one-line error naming what is allowed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence


class UsageError(ValueError):
    """A bad command-line value: reported on one line with what is allowed."""


def parse_floats(text: str, what: str = "eps") -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is not a comma-separated list of numbers (e.g. 0.1,0.2,0.3)"
        ) from None
    if not values or any(not (v > 0) or v != v or v == float("inf") for v in values):
        raise UsageError(f"{what} {text!r} must be positive finite numbers, e.g. 0.1,0.2,0.3")
    return values


def parse_names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    for name in names or [text]:
        if name not in allowed:
            raise UsageError(f"{what} {name!r} is unknown; allowed: {', '.join(allowed)}")
    return names


def attack_sizes(text: str) -> dict[str, int]:
    """``NAME=N,...`` into {name: N}, each N >= 1 (the names are the config's to check)."""
    sizes: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise UsageError(f"{item.strip()!r} is not NAME=N (e.g. square=200)")
        try:
            sizes[name.strip()] = positive_int(value.strip())
        except argparse.ArgumentTypeError as err:
            raise UsageError(f"test examples for {name.strip()}: {err}") from None
    return sizes


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def int_tuple(text: str, minimum: int = 1) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 140,80)"
        ) from None
    if any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} must be integers >= {minimum}")
    return values


def seed_tuple(text: str) -> tuple[int, ...]:
    """Distinct non-negative seeds, in the order given."""
    seeds = int_tuple(text, minimum=0)
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} needs distinct seeds, each given once")
    return seeds


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def positive_float(text: str) -> float:
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def size_list(text: str, what: str, words: tuple[str, ...] = ("all",)) -> list[int | str | None]:
    sizes: list[int | str | None] = []
    for part in text.split(","):
        part = part.strip()
        if part in words:
            sizes.append(None if part == "all" else part)
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            allowed = " or ".join(["a positive integer"] + [repr(w) for w in words])
            raise UsageError(f"{what} {part!r} is not {allowed}")
    return sizes




def eot_value(text: str) -> int | str:
    """``--eot``: a number of noise draws >= 1, or ``auto`` (chosen by convergence)."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of draws >= 1 or "
                                         "'auto'") from None


def named_setting(text: str) -> tuple[str, dict[str, str]]:
    """``NAME: KEY=VALUE KEY=VALUE ...`` (a setting of a study's grid) into (NAME, {KEY: VALUE})."""
    name, sep, rest = text.partition(":")
    if not sep or not re.fullmatch(r"[\w.+-]+", name.strip()):
        raise UsageError(f"setting {text!r} is not NAME: KEY=VALUE ... (e.g. 'sigma-0.1: "
                         "sigma=0.1'; NAME of letters, digits, . + - _)")
    return name.strip(), key_values(rest, f"setting {name.strip()!r}")


def key_values(text: str, what: str) -> dict[str, str]:
    """Space-separated ``KEY=VALUE`` items into {KEY: VALUE} (the keys are the caller's to
    check)."""
    pairs = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what}: {item!r} is not KEY=VALUE (e.g. sigma=0.1)")
        pairs[key] = value
    return pairs


def name_value_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``NAME=VALUE`` items (a bare VALUE is keyed ''), e.g. ``--checkpoint`` files."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        key = name if sep else ""
        if key in pairs:
            raise UsageError(f"{what} for {key or 'the file model'!r} is given twice")
        pairs[key] = value
    return pairs
