"""The vocabulary of the store's storage operations: a change to one item and the
condition it is written under, as data.

The steps (:mod:`worker.store.steps`) say what a write changes and when it may happen;
a backend only carries it out. DynamoDB renders a :class:`Change` and a :class:`Condition`
as one UpdateItem's expressions; memory applies them with :meth:`Change.applied_to` and
:meth:`Condition.holds`, which are DynamoDB's semantics written out: every right-hand
side reads the item as it was, and a comparison with an absent attribute is false.
(docs/architecture.md, "Event state machine".)
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

Item = dict[str, Any]  # one stored item as plain Python values


class ConditionLost(Exception):
    """A conditional write did not happen; ``old`` is the item as it was (None if absent,
    or when the backend was not asked to hand it back)."""

    def __init__(self, old: Item | None) -> None:
        super().__init__("conditional check failed")
        self.old = old


@dataclass
class Change:
    """What one write does to an item (created with only its key when absent)."""

    set: dict[str, Any] = field(default_factory=dict)
    set_if_absent: dict[str, Any] = field(default_factory=dict)
    # attr <- (another attribute's value as it was, the default when that is absent;
    # None: no default, the source is always there)
    copy: dict[str, tuple[str, Any]] = field(default_factory=dict)
    increment: dict[str, int] = field(default_factory=dict)
    append: dict[str, list[Any]] = field(default_factory=dict)
    add: dict[str, Collection[str]] = field(default_factory=dict)  # members added to a string set
    remove: tuple[str, ...] = ()

    def applied_to(self, old: Mapping[str, Any], key: str) -> Item:
        """The item after this change (``old`` is left as it was)."""
        new: Item = copy.deepcopy(dict(old)) if old else {"pk": key}
        for name, value in self.set.items():
            new[name] = copy.deepcopy(value)
        for name, value in self.set_if_absent.items():
            if name not in old:
                new[name] = copy.deepcopy(value)
        for name, (source, default) in self.copy.items():
            value = old.get(source, default)
            if value is not None:
                new[name] = value
        for name, by in self.increment.items():
            new[name] = old.get(name, 0) + by
        for name, entries in self.append.items():
            new[name] = [*copy.deepcopy(list(old.get(name, ()))), *copy.deepcopy(entries)]
        for name, members in self.add.items():
            new[name] = {*old.get(name, ()), *members}
        for name in self.remove:
            new.pop(name, None)
        return new


class Condition:
    """When a write may happen; evaluated against the item as it is (None: absent)."""

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Absent(Condition):
    """The item does not exist."""

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        return item is None


@dataclass(frozen=True)
class Exists(Condition):
    """The item exists."""

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        return item is not None


@dataclass(frozen=True)
class Missing(Condition):
    """The item has no attribute ``name`` (or does not exist)."""

    name: str

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        return item is None or self.name not in item


@dataclass(frozen=True)
class Compare(Condition):
    """``name <op> value``; false when the attribute is absent."""

    name: str
    op: str  # one of = < <= >
    value: Any

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        if item is None or self.name not in item:
            return False
        current = item[self.name]
        if self.op == "=":
            return bool(current == self.value)
        if self.op == "<":
            return bool(current < self.value)
        if self.op == "<=":
            return bool(current <= self.value)
        if self.op == ">":
            return bool(current > self.value)
        raise ValueError(f"unknown comparison {self.op!r}")


@dataclass(frozen=True)
class OneOf(Condition):
    """``name IN values``; false when the attribute is absent."""

    name: str
    values: tuple[Any, ...]

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        return item is not None and self.name in item and item[self.name] in self.values


@dataclass(frozen=True)
class AnyOf(Condition):
    parts: tuple[Condition, ...]

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        return any(part.holds(item) for part in self.parts)


@dataclass(frozen=True)
class AllOf(Condition):
    parts: tuple[Condition, ...]

    def holds(self, item: Mapping[str, Any] | None) -> bool:
        return all(part.holds(item) for part in self.parts)


def eq(name: str, value: Any) -> Compare:
    return Compare(name, "=", value)


def lt(name: str, value: Any) -> Compare:
    return Compare(name, "<", value)


def le(name: str, value: Any) -> Compare:
    return Compare(name, "<=", value)


def gt(name: str, value: Any) -> Compare:
    return Compare(name, ">", value)


def any_of(*parts: Condition) -> AnyOf:
    return AnyOf(parts)


def all_of(*parts: Condition) -> AllOf:
    return AllOf(parts)


def one_of(name: str, values: Collection[Any]) -> OneOf:
    return OneOf(name, tuple(sorted(values)))
