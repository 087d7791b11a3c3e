"""The package boundaries of docs/architecture.md, checked on the source.

- ``secops_core`` imports neither side, nor boto3/botocore, nor Strands;
- ``agent_runtime`` imports nothing from ``worker``;
- ``worker`` imports ``agent_runtime`` only in its in-process transport adapter;
- no import cycle between our modules (imports inside functions included);
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
# The one worker module allowed to load the runtime (the embedded default and `secops analyze`).
INPROCESS_ADAPTER = "worker.agents.inprocess"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str) -> Iterator[str]:
    """Every module named by an import in ``path``, except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(tree)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = {name for name in _imports(path, module) if name in modules and name != module}
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


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ importing its own submodules is how packages re-export.
            if node == nxt.rpartition(".")[0] or nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


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
