"""``secops rules explain RECORD|-``: which rule, label or pattern decided the floor."""

from __future__ import annotations

import json
from typing import IO, Any

from secops_core.errors import ContractError
from secops_core.waf.explain import explain_record, render_explanation
from secops_core.waf.operator import OperatorCatalog
from worker.ops.inputs import InputError

EXIT_OK = 0
EXIT_FAILED = 1


def _records(text: str, source: str) -> list[Any]:
    """One JSON record (pretty-printed or not), a JSON array of them, or JSON lines."""
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{source}: empty, expected a WAF event as JSON")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return value if isinstance(value, list) else [value]


def run_rules_explain(
    stream: IO[str], source: str, operator: OperatorCatalog, out: IO[str], *, as_json: bool
) -> int:
    """Explain every record of ``stream``; a record the pipeline would reject is an error."""
    try:
        text = stream.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not UTF-8 text ({exc.reason})") from None
    records = _records(text, source)
    explanations = []
    for index, record in enumerate(records, start=1):
        try:
            explanations.append(explain_record(record, operator))
        except ContractError as exc:
            where = f"{source} record {index}" if len(records) > 1 else source
            raise InputError(f"{where}: {exc.message}") from None
    if as_json:
        body = explanations[0] if len(explanations) == 1 else explanations
        out.write(json.dumps(body, indent=2) + "\n")
    else:
        out.write("\n\n".join(render_explanation(item) for item in explanations) + "\n")
    return EXIT_OK
