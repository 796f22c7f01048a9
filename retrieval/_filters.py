"""Parse a ``PayloadFilter`` mapping into backend-neutral conditions (each store translates).

``{"source": "a.md"}`` equality, ``{"tags": ["x", "y"]}`` any of, ``{"page": {"gte": 2}}``
range (gt/gte/lt/lte; numbers, or ISO-8601 strings for datetimes). Every key must match.
A malformed filter raises ``ValueError``: it is the caller's mistake, not the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retrieval.types import PayloadFilter

RANGE_KEYS = frozenset({"gt", "gte", "lt", "lte"})


@dataclass(frozen=True, slots=True)
class Equals:
    key: str
    value: str | int | bool


@dataclass(frozen=True, slots=True)
class AnyOf:
    key: str
    values: list[str] | list[int]


@dataclass(frozen=True, slots=True)
class Range:
    key: str
    bounds: dict[str, float | str]

    @property
    def is_datetime(self) -> bool:
        return any(isinstance(v, str) for v in self.bounds.values())


Condition = Equals | AnyOf | Range


def parse_filter(flt: PayloadFilter | None) -> list[Condition]:
    """The conditions of ``flt`` (all must match); an empty list for no filter."""
    if not flt:
        return []
    return [_condition(str(key), value) for key, value in flt.items()]


def _condition(key: str, value: Any) -> Condition:
    if isinstance(value, bool | str):
        return Equals(key, value)
    if isinstance(value, int):
        return Equals(key, value)
    if isinstance(value, float):
        # exact float equality has no match condition in Qdrant: a closed range says the same
        return Range(key, {"gte": value, "lte": value})
    if isinstance(value, list | tuple | set | frozenset):
        return _any_of(key, list(value))
    if isinstance(value, dict):
        return _range(key, value)
    raise ValueError(f"filter on '{key}': unsupported value {value!r}")


def _any_of(key: str, values: list[Any]) -> AnyOf:
    if not values:
        raise ValueError(f"filter on '{key}': an any-of list needs at least one value")
    if all(isinstance(v, str) for v in values):
        return AnyOf(key, [str(v) for v in values])
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return AnyOf(key, [int(v) for v in values])
    raise ValueError(f"filter on '{key}': any-of values must be all strings or all integers")


def _range(key: str, bounds: dict[Any, Any]) -> Range:
    unknown = set(bounds) - RANGE_KEYS
    if unknown or not bounds:
        raise ValueError(f"filter on '{key}': a range takes gt/gte/lt/lte, got {sorted(bounds)}")
    clean: dict[str, float | str] = {}
    for op, bound in bounds.items():
        if isinstance(bound, bool) or not isinstance(bound, int | float | str):
            raise ValueError(f"filter on '{key}': range bound {op}={bound!r} is not a number")
        clean[str(op)] = bound if isinstance(bound, str) else float(bound)
    kinds = {isinstance(v, str) for v in clean.values()}
    if len(kinds) > 1:
        raise ValueError(f"filter on '{key}': mix of numeric and datetime range bounds")
    return Range(key, clean)
