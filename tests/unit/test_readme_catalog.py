"""The README's severity table is the catalog's: one home per fact."""

from __future__ import annotations

import re
from pathlib import Path

from secops_core.waf.catalog import severity_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_severity_table_is_the_catalog() -> None:
    # GIVEN the table between the README's markers
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- severity-table:start -->\n(.*?)\n<!-- severity-table:end -->", text, re.S)
    assert found is not None, "README lost its severity-table markers"
    # WHEN compared with the table the catalog renders
    # THEN they are the same (regenerate with: python -c "from secops_core.waf.catalog
    # import severity_table; print(severity_table())")
    assert found.group(1) == severity_table()
