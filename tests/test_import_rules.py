"""The house stays one-way: the import rules of docs/architecture.md, enforced.

The layer table is read from the ```layers block of docs/architecture.md (top floor first), so the
page and this test cannot drift apart. Every import counts, whether at the top of a module, inside a
function or under `if TYPE_CHECKING:`: a lazy import still makes the lower floor know the upper one.

Run as a script to count another tree (e.g. an older checkout):
    python tests/test_import_rules.py path/to/platform/custody
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platform" / "custody"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGE_ROOT = "custody"  # the package's own __init__ (its version): every floor may read it


def layers(doc: Path = ARCHITECTURE) -> dict[str, int]:
    """Each top-level package or module of custody -> its floor (0 is the ground floor)."""
    block = re.search(r"```layers\n(.*?)```", doc.read_text("utf-8"), re.S)
    assert block, f"{doc}: no ```layers block"
    rows = [line.split() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    return {name: floor for floor, row in enumerate(reversed(rows)) for name in row}


def modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = ("custody", *path.relative_to(package).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(package: Path) -> dict[str, set[str]]:
    """Module -> the custody modules it imports (anywhere in its body)."""
    known = modules(package)
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                # `from custody.ledger import query` imports the module custody.ledger.query
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for target in targets:
                while target and target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name:
                    graph[name].add(target)
    return graph


def node_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE_ROOT


def climbs(graph: dict[str, set[str]], floors: dict[str, int]) -> list[tuple[str, str]]:
    """Imports from one floor to the same or a higher one (only downward imports are allowed)."""
    found = []
    for source, targets in graph.items():
        for target in targets:
            a, b = node_of(source), node_of(target)
            if a != b and b != PACKAGE_ROOT and floors.get(b, -1) >= floors.get(a, -1):
                found.append((source, target))
    return sorted(found)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's SCCs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# -- the rules -------------------------------------------------------------------------------------


def test_every_package_has_a_floor() -> None:
    floors = layers()
    unplaced = sorted({node_of(m) for m in modules(PACKAGE)} - set(floors) - {PACKAGE_ROOT})
    assert not unplaced, f"give {unplaced} a floor in docs/architecture.md's layers block"


def test_no_import_circles() -> None:
    assert circles(imports(PACKAGE)) == []


def test_imports_only_run_down_the_floors() -> None:
    assert climbs(imports(PACKAGE), layers()) == []


def test_checks_and_stages_never_import_the_pipeline() -> None:
    graph = imports(PACKAGE)
    for source, targets in graph.items():
        if node_of(source) in ("checks", "stages"):
            assert not [t for t in targets if node_of(t) == "pipeline"], source
        if source.startswith("custody.pipeline.executors"):
            assert all(node_of(t) not in ("policy", "runs", "reports", "views", "cli") for t in targets), source


def test_the_rules_catch_a_circle_and_a_climb(tmp_path: Path) -> None:
    """The checker itself: a planted circle and an upward import are found."""
    package = tmp_path / "custody"
    for folder in ("ledger", "views"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "ledger" / "a.py").write_text("from custody.ledger import b\nfrom custody.views.page import x\n")
    (package / "ledger" / "b.py").write_text("def f():\n    from . import a\n")
    (package / "views" / "page.py").write_text("from custody.ledger.a import y\n")
    graph = imports(package)
    assert circles(graph) == [["custody.ledger.a", "custody.ledger.b", "custody.views.page"]]
    assert climbs(graph, {"ledger": 0, "views": 1}) == [("custody.ledger.a", "custody.views.page")]


if __name__ == "__main__":
    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    found = imports(tree)
    floors = layers()
    floors.setdefault("executors", floors["pipeline"])  # before the move into pipeline/
    loops, upward = circles(found), climbs(found, floors)
    print(f"{tree}: {len(loops)} import circles, {len(upward)} imports against the floors")
    for loop in loops:
        print("  circle:", " <-> ".join(loop))
    for source, target in upward:
        print(f"  climb: {source} -> {target}")
