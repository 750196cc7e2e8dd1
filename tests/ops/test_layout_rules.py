"""The layout rules of ml_platform/ and wizard/, read from the source (AST): no import cycles, a reason next to each
function-local import, no utils/ package, no file over 600 lines (migrations aside), no function over 80 lines.

The import graph is the one Python executes: an import of `a.b.c` runs `a/__init__.py` and `a/b/__init__.py`
too, so those packages count as imported. Imports under `if TYPE_CHECKING:` never run and do not count; a
function-local import counts unless it is marked `# lazy: <reason>` (on its line or the line above).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ml_platform", "wizard")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
LAZY = re.compile(r"#\s*lazy:\s*\S")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted name as written, resolved to absolute
    names: tuple[str, ...]  # for `from target import names`
    line: int
    local: bool  # inside a function
    lazy: bool  # marked `# lazy: <reason>`
    type_checking: bool


def _source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                  if "migrations" not in p.relative_to(ROOT).parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in _source_files()}


def _is_package(module: str) -> bool:
    path = _modules().get(module)
    return path is not None and path.name == "__init__.py"


def _imports(path: Path) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    importer = _module_name(path)
    found: list[Import] = []

    def marked(node: ast.stmt) -> bool:
        """`# lazy: <reason>` on the statement's lines, or in the comment right above its group of imports."""
        if any(LAZY.search(text) for text in lines[node.lineno - 1:node.end_lineno]):
            return True
        above = node.lineno - 2
        while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
            above -= 1
        return above >= 0 and lines[above].strip().startswith("#") and bool(LAZY.search(lines[above]))

    def visit(node: ast.AST, local: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if isinstance(child, ast.Import):
                    targets = [(alias.name, ()) for alias in child.names]
                else:
                    base = child.module or ""
                    if child.level:
                        package = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
                        package = package[:len(package) - (child.level - 1)]
                        base = ".".join([*package, base] if base else package)
                    targets = [(base, tuple(alias.name for alias in child.names))]
                for target, names in targets:
                    found.append(Import(importer, target, names, child.lineno, local, marked(child), type_checking))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, True, type_checking)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, local, True)
            else:
                visit(child, local, type_checking)

    visit(tree, False, False)
    return found


def _edges(imp: Import) -> set[str]:
    """The first-party modules an import runs: the target, its sub-modules named by `from`, and their packages."""
    modules = _modules()
    hit = {f"{imp.target}.{name}" for name in imp.names if f"{imp.target}.{name}" in modules}
    if imp.target in modules:
        hit.add(imp.target)
    with_parents = set()
    for module in hit:
        parts = module.split(".")
        with_parents |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & modules.keys()
    # The importer's own packages are already running (Python imports a package before its sub-modules): a
    # sub-module importing a sibling does not run them again, and a package's __init__ importing its
    # sub-modules is not a cycle through itself.
    parts = imp.importer.split(".")
    return with_parents - {".".join(parts[:n]) for n in range(1, len(parts) + 1)}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in _modules()}
    for path in _source_files():
        for imp in _imports(path):
            if not imp.type_checking and not imp.lazy:
                graph[imp.importer] |= _edges(imp)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def _function_lines(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append((f"{_rel(path)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
    return out


# --------------------------------------------------------------------------- the rules


def test_there_is_no_import_cycle_between_modules() -> None:
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_function_local_import_says_why_it_is_lazy() -> None:
    unmarked = [f"{_rel(p)}:{imp.line} {imp.target}" for p in _source_files()
                for imp in _imports(p) if imp.local and not imp.lazy]
    assert not unmarked, "function-local imports without a `# lazy: <reason>` comment:\n" + "\n".join(unmarked)


def test_no_file_is_over_600_lines() -> None:
    long = [f"{_rel(p)}: {n} lines" for p in _source_files()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, "\n".join(long)


def test_no_function_is_over_80_lines() -> None:
    long = [f"{where}: {n} lines" for p in _source_files() for where, n in _function_lines(p)
            if n > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_there_is_no_utils_package() -> None:
    assert not (ROOT / "ml_platform" / "utils").exists(), "ml_platform/utils/ is gone: its code lives in etl/sources/"


# --------------------------------------------------------------------------- the checker checks itself


def test_the_checker_finds_a_cycle_and_a_lazy_import(tmp_path, monkeypatch) -> None:
    """A cycle through a package's re-exporting __init__, and an unmarked function-local import, are found."""
    pkg = tmp_path / "ml_platform"
    (pkg / "services").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "services" / "__init__.py").write_text("from ml_platform.services.jobs import job_create\n")
    (pkg / "services" / "jobs.py").write_text("from ml_platform import runs\n\ndef job_create():\n    pass\n")
    (pkg / "services" / "sources.py").write_text("")
    (pkg / "runs.py").write_text(
        "from ml_platform.services import sources\n\ndef f():\n    from ml_platform import x\n\n"
        "def g():\n    # lazy: only the command needs it\n    from ml_platform import y\n    import z\n\n"
        "def h():\n    import w  # lazy: an optional driver\n")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "ROOT", tmp_path)
    monkeypatch.setattr(this, "PACKAGES", ("ml_platform",))
    _modules.cache_clear()
    try:
        cycle = _cycle(import_graph())
        local = [(imp.line, imp.lazy) for imp in _imports(pkg / "runs.py") if imp.local]
    finally:
        _modules.cache_clear()
    assert cycle is not None and {"ml_platform.runs", "ml_platform.services"} <= set(cycle)
    assert local == [(4, False), (8, True), (9, True), (12, True)]
