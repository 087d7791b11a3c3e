"""The README's settings table lists every field of every settings model, with its default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agent_runtime.settings import RuntimeSettings
from secops_core.settings import CommonSettings
from worker.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
# The README writes "no default" as an en dash.
_NONE = "\u2013"


def _table() -> dict[str, str]:
    """``{SECOPS_VARIABLE: default cell}`` from the rows of the Settings section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Settings\n") :]
    section = section[: section.index("\n## ", 1)]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`SECOPS_"):
            continue
        variables = re.findall(r"`(SECOPS_[A-Z0-9_]+)`", cells[0])
        defaults = [part.strip().strip("`") for part in cells[1].split(" / ")]
        assert len(variables) == len(defaults), f"one default per variable in: {line}"
        rows.update(zip(variables, defaults, strict=True))
    return rows


def _shown(default: Any) -> str:
    if default is None:
        return _NONE
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, SecretStr):
        return "<secret>"
    return str(default)


@pytest.mark.parametrize("model", [CommonSettings, RuntimeSettings, Settings], ids=lambda m: m.__name__)
def test_every_setting_is_in_the_readme_with_its_default(model: type[Any]) -> None:
    # GIVEN the README's table
    table = _table()

    # WHEN each field of the model is looked up by its variable
    missing = []
    wrong = []
    for name, field in model.model_fields.items():
        variable = f"SECOPS_{name.upper()}"
        if variable not in table:
            missing.append(variable)
        elif table[variable] != _shown(field.default):
            wrong.append((variable, table[variable], _shown(field.default)))

    # THEN every one is there, with the default the code has
    assert missing == []
    assert wrong == []


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    fields = {
        f"SECOPS_{name.upper()}" for model in (Settings, RuntimeSettings) for name in model.model_fields
    }
    assert set(_table()) - fields == set()
