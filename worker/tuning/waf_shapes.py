"""Proposed WAF JSON checked against the WAFv2 API's own model, as botocore ships it.

Whole rules are validated as the ``Rules`` of an ``UpdateWebACL`` request (botocore's
``ParamValidator``: required members, types, minimum lengths), and every string against
its shape's enum, pattern and maximum length, which the validator leaves to the service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, Shape, StringShape, StructureShape
from botocore.validate import ParamValidator

from worker.tuning.proposals import Proposal

# Placeholders for the parts of an UpdateWebACL request the proposal does not change.
_ACL = {
    "Name": "web-acl",
    "Scope": "REGIONAL",
    "Id": "00000000-0000-0000-0000-000000000000",
    "DefaultAction": {"Allow": {}},
    "VisibilityConfig": {
        "SampledRequestsEnabled": True,
        "CloudWatchMetricsEnabled": True,
        "MetricName": "web-acl",
    },
    "LockToken": "00000000-0000-0000-0000-000000000000",
}


@cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("wafv2")


def update_web_acl_input(rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An UpdateWebACL request carrying ``rules``."""
    return {**_ACL, "Rules": [dict(r) for r in rules]}


def problems_of(value: Any, shape_name: str) -> list[str]:
    """What is wrong with ``value`` as the WAFv2 shape ``shape_name`` (empty: valid)."""
    model = _model()
    shape = (
        model.operation_model("UpdateWebACL").input_shape
        if shape_name == "UpdateWebACL"
        else model.shape_for(shape_name)
    )
    report = ParamValidator().validate(value, shape)
    found = [report.generate_report()] if report.has_errors() else []
    found.extend(_constraints(value, shape, shape_name))
    return found


def _constraints(value: Any, shape: Shape, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                found += _constraints(value[name], member, f"{path}.{name}")
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for i, item in enumerate(value):
            found += _constraints(item, shape.member, f"{path}[{i}]")
    elif isinstance(shape, StringShape) and isinstance(value, str):
        meta = shape.metadata
        if shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} is not one of {sorted(shape.enum)}")
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{path}: longer than {meta['max']} characters")
        pattern = meta.get("pattern")
        if pattern and not re.fullmatch(pattern, value, flags=re.DOTALL):
            found.append(f"{path}: does not match {pattern}")
    return found


def validated(proposal: Proposal) -> Proposal:
    """The proposal with what the WAFv2 model finds wrong in it (nothing, normally)."""
    problems: list[str] = []
    if proposal.rules:
        problems += problems_of(update_web_acl_input(proposal.rules), "UpdateWebACL")
    if proposal.fragment is not None and proposal.fragment_shape is not None:
        problems += problems_of(proposal.fragment, proposal.fragment_shape)
    return replace(proposal, problems=tuple(problems))
