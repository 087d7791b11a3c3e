"""The operator's own rules: a catalog file that maps rule names, patterns and labels.

``SECOPS_RULES_CATALOG`` names a YAML (or JSON) file; both processes validate it when
their settings are built and load it once (docs/architecture.md, "Severity"):

    rules:
      - rule: rule-17              # a rule name, case and separators ignored
        class: sqli
      - pattern: "^legacy-.*-exec$"  # a regular expression searched in the rule name
        class: rce
      - label: "awswaf:111122223333:rulegroup:edge:probe"   # a label (prefix*: a prefix)
        class: admin_access

An operator entry wins over the built-in catalog: the operator knows their rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from secops_core.waf.catalog import CLASSES
from secops_core.waf.names import key

RULES_CATALOG_ENV = "SECOPS_RULES_CATALOG"
# A catalog is a short hand-written file; a huge one is a mistake, not a catalog.
MAX_CATALOG_BYTES = 1_048_576
_KINDS = ("rule", "pattern", "label")


@dataclass(frozen=True, slots=True)
class OperatorEntry:
    kind: str  # rule, pattern or label
    value: str
    cls: str
    where: str  # "<file> line N", shown in the floor's reason
    _regex: re.Pattern[str] | None = None

    def matches_rule(self, rule_id: str) -> bool:
        if self.kind == "rule":
            return key(rule_id) == key(self.value)
        if self.kind == "pattern" and self._regex is not None:
            return self._regex.search(rule_id) is not None
        return False

    def matches_label(self, label: str) -> bool:
        if self.kind != "label":
            return False
        if self.value.endswith("*"):
            return label.lower().startswith(self.value[:-1].lower())
        return label.lower() == self.value.lower()


@dataclass(frozen=True, slots=True)
class OperatorCatalog:
    path: str
    entries: tuple[OperatorEntry, ...] = ()

    def for_rule(self, rule_id: str) -> OperatorEntry | None:
        return next((entry for entry in self.entries if entry.matches_rule(rule_id)), None)

    def for_label(self, label: str) -> OperatorEntry | None:
        return next((entry for entry in self.entries if entry.matches_label(label)), None)


EMPTY = OperatorCatalog(path="")


class RulesCatalogError(ValueError):
    """A catalog file that cannot be used; the message is one line naming file and line."""


def _error(path: str, line: int | None, message: str) -> RulesCatalogError:
    where = f"{path} line {line}" if line is not None else path
    return RulesCatalogError(f"{where}: {message}")


def parse_operator_catalog(text: str, path: str) -> OperatorCatalog:
    """Validate a catalog's text; every problem is one line naming the file and line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise _error(path, line, f"not valid YAML or JSON: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise _error(path, None, f"not valid YAML or JSON: {exc}") from None
    if data is None:
        return OperatorCatalog(path=path)
    if not isinstance(data, Mapping) or set(data) - {"rules"}:
        raise _error(path, 1, "expected a mapping with one key, 'rules', holding a list of entries")
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise _error(path, 1, "'rules' must be a list of entries")
    nodes = _entry_nodes(root)
    entries = []
    for index, item in enumerate(items):
        line = nodes[index] if index < len(nodes) else None
        entries.append(_entry(item, path, line, index + 1))
    return OperatorCatalog(path=path, entries=tuple(entries))


def _entry_nodes(root: Any) -> list[int]:
    """The line of each entry under 'rules', from the composed YAML node tree."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for name, value in root.value:
        if getattr(name, "value", None) == "rules" and isinstance(value, yaml.SequenceNode):
            return [node.start_mark.line + 1 for node in value.value]
    return []


def _entry(item: Any, path: str, line: int | None, number: int) -> OperatorEntry:
    if not isinstance(item, Mapping):
        raise _error(path, line, f"entry {number} must be a mapping like {{rule: NAME, class: CLASS}}")
    unknown = sorted(str(k) for k in item if k not in (*_KINDS, "class"))
    if unknown:
        raise _error(path, line, f"entry {number} has unknown key(s) {', '.join(unknown)}")
    kinds = [k for k in _KINDS if k in item]
    if len(kinds) != 1:
        raise _error(path, line, f"entry {number} needs exactly one of rule, pattern, label")
    kind = kinds[0]
    value = item[kind]
    if not isinstance(value, str) or not value.strip():
        raise _error(path, line, f"entry {number}: {kind} must be a non-empty string")
    cls = item.get("class")
    if not isinstance(cls, str) or cls not in CLASSES:
        known = ", ".join(sorted(CLASSES))
        raise _error(path, line, f"entry {number}: unknown class {cls!r} (known: {known})")
    regex = None
    if kind == "pattern":
        try:
            regex = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise _error(
                path, line, f"entry {number}: pattern {value!r} is not a regular expression: {exc}"
            ) from None
    where = f"{Path(path).name} line {line}" if line is not None else Path(path).name
    return OperatorEntry(kind, value.strip(), cls, where, regex)


@lru_cache(maxsize=8)
def load_operator_catalog(path: str) -> OperatorCatalog:
    """Read and validate a catalog file once per path (the floor runs per event)."""
    if not path:
        return EMPTY
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_CATALOG_BYTES:
            raise _error(path, None, f"file has {size} bytes (limit {MAX_CATALOG_BYTES})")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _error(path, None, "file is not UTF-8 text") from None
    return parse_operator_catalog(text, path)


def active_operator_catalog() -> OperatorCatalog:
    """The catalog ``SECOPS_RULES_CATALOG`` names, loaded once; empty when unset.

    Both processes validate the same variable through their settings at start-up
    (``CommonSettings.rules_catalog``), so by the time an event is graded the file is
    known to be good and this is a cache hit.
    """
    return load_operator_catalog(os.environ.get(RULES_CATALOG_ENV, "").strip())
