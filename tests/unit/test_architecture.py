"""The package boundaries of docs/architecture.md, checked on the source.

- ``secops_core`` imports neither side, nor boto3/botocore, nor Strands;
- ``agent_runtime`` imports nothing from ``worker``;
- ``worker`` imports ``agent_runtime`` only in its in-process transport adapter;
- no import cycle between our modules, counted strictly: imports under
  ``TYPE_CHECKING`` and inside functions count, an import of ``a.b.c`` counts as one of
  the packages ``a`` and ``a.b`` too (Python runs their ``__init__``), and ``bench/``,
  ``chaos/`` and ``testkit/`` are scanned with the packages;
- the pipeline imports ports and domain types, never an adapter, boto3/botocore or the
  daemon; only the CLI, the embedded demo, the benchmarks and the chaos runs import the
  daemon (the composition root); ``bench/`` and ``chaos/`` never import ``tests``;
- importing :mod:`worker.ports` loads no adapter;
- each image's packages import with the other side absent (as in the two Dockerfiles).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("secops_core", "worker", "agent_runtime")
# Scanned for cycles and boundaries with the packages; shipped in no image.
TOOLS = ("bench", "chaos", "testkit")
# The one worker module allowed to load the runtime (the embedded default and `secops analyze`).
INPROCESS_ADAPTER = "worker.agents.inprocess"
VENDOR_SDKS = frozenset({"boto3", "botocore"})
# Modules that talk to the world or build what does: the pipeline never names them, and
# importing the ports loads none of them (a name covers its submodules).
ADAPTERS = (
    "worker.agents",
    "worker.consumers.s3_objects",
    "worker.consumers.sqs",
    "worker.embedded",
    "worker.incidents.dynamodb",
    "worker.incidents.factory",
    "worker.incidents.memory",
    "worker.notify.chat",
    "worker.notify.eventbridge",
    "worker.notify.fanout",
    "worker.notify.registry",
    "worker.notify.retry",
    "worker.notify.securityhub",
    "worker.notify.sns",
    "worker.ops",
    "worker.platform.aws",
    "worker.platform.health",
    "worker.platform.metrics",
    "worker.platform.resources",
    "worker.response.dynamodb",
    "worker.response.factory",
    "worker.response.memory",
    "worker.response.wafv2",
    "worker.store.dynamodb",
    "worker.store.memory",
    "worker.suppressions.dynamodb",
    "worker.suppressions.memory",
)
PIPELINE = "worker.pipeline"
DAEMON = "worker.daemon"
# Above the composition root: they build a worker and run it.
DAEMON_USERS = ("worker.cli", "worker.embedded", "bench", "chaos")


def _within(module: str, prefixes: tuple[str, ...] | frozenset[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _modules(roots: tuple[str, ...] = (*PACKAGES, *TOOLS)) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in roots:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str) -> Iterator[str]:
    """Every module named by an import in ``path``."""
    yield from _imports_in(path.read_text(encoding="utf-8"), module, package=path.name == "__init__.py")


def _imports_in(source: str, module: str, *, package: bool = False) -> Iterator[str]:
    """Every module named by an import in ``source``: at the top, under ``TYPE_CHECKING``,
    inside functions alike."""
    anchor_of = module if package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = anchor_of.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def _ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


def _graph() -> dict[str, set[str]]:
    """Module -> the modules it makes Python run: those it names, and the packages above
    them that are not above the importer itself (those run before it anyway)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own = set(_ancestors(module))
        edges: set[str] = set()
        for name in _imports(path, module):
            if name in modules:
                edges.add(name)
            edges.update(a for a in _ancestors(name) if a in modules and a not in own)
        edges.discard(module)
        graph[module] = edges
    return graph


def _all_imports(module: str) -> set[str]:
    return set(_imports(_modules()[module], module))


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_shared_package_imports_neither_side_nor_an_sdk() -> None:
    forbidden = {"worker", "agent_runtime", "boto3", "botocore", "strands", "bedrock_agentcore"}
    offenders = {
        module: sorted({_top(name) for name in _all_imports(module)} & forbidden)
        for module in _modules()
        if module.startswith("secops_core")
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_the_runtime_imports_nothing_from_the_worker() -> None:
    offenders = [
        module
        for module in _modules()
        if module.startswith("agent_runtime") and any(_top(n) == "worker" for n in _all_imports(module))
    ]
    assert offenders == []


def test_only_the_inprocess_adapter_imports_the_runtime() -> None:
    offenders = [
        module
        for module in _modules()
        if module.startswith("worker")
        and module != INPROCESS_ADAPTER
        and any(_top(n) == "agent_runtime" for n in _all_imports(module))
    ]
    assert offenders == []


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk closes (one per back edge)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycles() -> None:
    # GIVEN every import of the packages and the tools, counted strictly
    graph = _graph()
    # WHEN the graph is walked
    cycles = import_cycles(graph)
    # THEN it closes no cycle
    assert cycles == []


def test_the_strict_count_sees_what_a_lenient_one_misses() -> None:
    # GIVEN imports made only for type checking and inside a function
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import pkg.a
def later():
    from pkg import b
"""
    # WHEN they are read
    named = set(_imports_in(source, "probe"))
    # THEN both count
    assert {"pkg.a", "pkg", "pkg.b"} <= named
    # AND a package's __init__ re-exporting a module that imports the package back is a cycle
    assert import_cycles({"pkg": {"pkg.a"}, "pkg.a": {"pkg"}}) == [["pkg", "pkg.a", "pkg"]]


def test_the_pipeline_imports_no_adapter_sdk_or_daemon() -> None:
    offenders = {
        module: sorted(
            name
            for name in _all_imports(module)
            if _top(name) in VENDOR_SDKS or _within(name, ADAPTERS) or _within(name, (DAEMON,))
        )
        for module in _modules(("worker",))
        if _within(module, (PIPELINE,))
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_only_what_stands_above_the_composition_root_imports_it() -> None:
    offenders = [
        module
        for module in _modules()
        if module != DAEMON
        and not _within(module, DAEMON_USERS)
        and any(_within(name, (DAEMON,)) for name in _all_imports(module))
    ]
    assert offenders == []


def test_the_tools_do_not_import_the_tests() -> None:
    offenders = [
        module for module in _modules(TOOLS) if any(_top(name) == "tests" for name in _all_imports(module))
    ]
    assert offenders == []


def test_importing_the_ports_loads_no_adapter() -> None:
    # GIVEN a fresh interpreter
    script = "import sys, worker.ports; print('\\n'.join(sorted(sys.modules)))"
    # WHEN it imports the ports
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = result.stdout.split()
    # THEN no adapter, and no AWS SDK, came with them
    assert [m for m in loaded if _within(m, ADAPTERS) or _top(m) in VENDOR_SDKS] == []


_BLOCKER = """
import importlib.abc, pkgutil, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {absent!r} or name.startswith({absent!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent from this image)")
        return None
sys.meta_path.insert(0, Absent())
import importlib
skip = set({skip!r})
for package in {packages!r}:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name not in skip:
            importlib.import_module(info.name)
print("ok")
"""


@pytest.mark.parametrize(
    ("packages", "absent", "skip"),
    [
        (("secops_core", "worker"), "agent_runtime", (INPROCESS_ADAPTER,)),
        (("secops_core", "agent_runtime"), "worker", ()),
    ],
    ids=["worker-image", "agent-image"],
)
def test_each_image_imports_without_the_other_side(
    packages: tuple[str, ...], absent: str, skip: tuple[str, ...]
) -> None:
    # GIVEN a Python where the other side's package cannot be found (as in its image)
    script = _BLOCKER.format(absent=absent, skip=skip, packages=packages)
    # WHEN every module of this side is imported
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    # THEN all of them load
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_comments_point_to_the_design_this_repository_holds() -> None:
    # The design lives in docs/architecture.md; no code may cite a document the repository lacks.
    assert (ROOT / "docs" / "architecture.md").is_file()
    cited = [
        str(path.relative_to(ROOT))
        for folder in (*PACKAGES, "tests", "bench", "chaos")
        for path in (ROOT / folder).rglob("*.py")
        if "DESIGN" + ".md" in path.read_text(encoding="utf-8")
    ]
    assert cited == []
