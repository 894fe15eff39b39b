"""The layout's promises, checked on the code itself: no import circles, no module reaching
into another's underscore names, every benchmark script starts. (The layers themselves are
import-linter contracts in pyproject.toml, run by `make test`.)"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = [ROOT / "src" / "labelpilot", ROOT / "tests", ROOT / "benchmarks"]


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(root: str) -> None:
        # iterative depth-first search: (module, its remaining successors)
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, succ = work[-1]
            nxt = next(succ, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a package whose modules import each other in a ring, and one that stands apart
    pkg = tmp_path / "ringpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from ringpkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from ringpkg import c\n")  # lazy imports count
    (pkg / "c.py").write_text("import ringpkg.a\n")
    (pkg / "d.py").write_text("import ringpkg.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("ringpkg", cache_dir=None)
    assert import_cycles(graph) == [["ringpkg.a", "ringpkg.b", "ringpkg.c"]]


def test_no_import_circles() -> None:
    graph = grimp.build_graph("labelpilot", exclude_type_checking_imports=True, cache_dir=None)
    assert len(graph.modules) > 50
    assert import_cycles(graph) == []


def private_uses(path: Path, base: Path = ROOT) -> list[str]:
    """`module._name` where `module` is a LabelPilot or test module imported by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("labelpilot", "tests")):
                    modules.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("labelpilot", "tests")):
            modules.update(a.asname or a.name for a in node.names if a.name.islower())
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{path.relative_to(base)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_private_use_finder_finds_one(tmp_path: Path) -> None:
    f = tmp_path / "sample.py"
    f.write_text("from labelpilot.store import repo\nrepo._chunks([1])\nrepo.now()\n")
    assert private_uses(f, tmp_path) == ["sample.py:2: repo._chunks"]


def test_no_module_uses_another_modules_private_names() -> None:
    # `from x import _name` is ruff's PLC2701 (make test); this catches `module._name`.
    found = [hit for folder in CHECKED for path in sorted(folder.rglob("*.py"))
             for hit in private_uses(path)]
    assert found == []


BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_every_benchmark_starts(script: Path) -> None:
    # --help imports the script and everything it imports at the top, then stops
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


# a function or method head in the UI's TypeScript: `function f(`, `async f(`, `get f()`
TS_HEAD = re.compile(r"^(\s*)(?:export\s+)?(?:async\s+)?(?:function\s+\w+|(?:get\s+)?\w+)\s*\(.*\{\s*$")
TS_KEYWORDS = {"if", "for", "while", "switch", "catch", "return"}


def long_ts_functions(source: str, limit: int) -> list[tuple[int, int]]:
    """(first line, length) of each function or method longer than `limit` lines, found by
    its head and the closing brace at the head's indentation (the code is formatted)."""
    lines = source.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = TS_HEAD.match(line)
        if not m or line.strip().split("(")[0].split()[-1] in TS_KEYWORDS:
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == m.group(1) + "}"), i)
        if end - i + 1 > limit:
            out.append((i + 1, end - i + 1))
    return out


def test_the_long_function_finder_finds_one() -> None:
    body = "\n".join(f"  x{i}();" for i in range(5))
    assert long_ts_functions(f"export async function f(a: number): void {{\n{body}\n}}\n", 6) \
        == [(1, 7)]
    assert long_ts_functions(f"class A {{\n  get b(): number {{\n{body}\n  }}\n}}\n", 6) == [(2, 7)]
    assert long_ts_functions(f"function f() {{\n{body}\n}}\n", 10) == []


@pytest.mark.parametrize("module", sorted((ROOT / "web" / "src").glob("*.ts")), ids=lambda p: p.name)
def test_no_ui_function_is_longer_than_a_screen(module: Path) -> None:
    assert long_ts_functions(module.read_text(), 100) == []


def test_tests_reach_no_private_attributes() -> None:
    """Tests use the public surface: no `obj._name` outside the object's own methods."""
    uses = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and path.name != "test_architecture.py"):
                uses.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert uses == []
