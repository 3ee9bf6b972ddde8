"""The package's shape, checked from its own source: imports only point down, the core knows
nothing of Dagster, the sandbox nothing of ATM, and one registry names every dataset."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "atm_assets"

pytestmark = pytest.mark.pure


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _absolute(node: ast.ImportFrom, name: str, path: Path) -> str:
    """The module a `from … import` names, a relative one (`from ..core import x`) resolved
    against the importing module's package."""
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every atm_assets module `name` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, name, path)
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_cycles(skip: str = "atm_assets.sandbox") -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), outside `skip`."""
    known = {n: p for n, p in _modules().items() if not n.startswith(skip)}
    graph = {n: _imports(n, p, known) for n, p in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def foreign_imports(package: str = "atm_assets.sandbox") -> dict[str, set[str]]:
    """Per module of `package`, the atm_assets modules outside it that it imports."""
    known = _modules()
    inside = lambda n: n == package or n.startswith(package + ".")  # noqa: E731
    found = {}
    for name, path in known.items():
        if inside(name):
            outside = {t for t in _imports(name, path, known) if not inside(t)}
            if outside:
                found[name] = outside
    return found


def test_no_import_circle_outside_the_sandbox():
    assert import_cycles() == []


def test_the_core_imports_no_dagster():
    for name, path in _modules().items():
        if not name.startswith("atm_assets.core"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "dagster" or n.startswith("dagster.") for n in names), name


def test_the_checker_sees_a_circle(tmp_path, monkeypatch):
    """The circle test would fail on a circle: two modules importing each other."""
    pkg = tmp_path / "atm_assets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from atm_assets.b import g\n")
    (pkg / "b.py").write_text("from atm_assets import a\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", pkg)
    assert import_cycles() == [["atm_assets.a", "atm_assets.b"]]


def test_the_sandbox_imports_nothing_of_atm():
    """The sandbox models the real service independently: none of its modules imports ATM's
    catalog, core or anything else of atm_assets outside atm_assets.sandbox."""
    assert foreign_imports() == {}


def test_the_checker_sees_a_sandbox_import_of_atm(tmp_path, monkeypatch):
    """The independence test would fail on an import of ATM from the sandbox, relative ones
    and imports inside functions included."""
    pkg = tmp_path / "atm_assets"
    (pkg / "sandbox").mkdir(parents=True)
    (pkg / "core").mkdir()
    for init in (pkg, pkg / "sandbox", pkg / "core"):
        (init / "__init__.py").write_text("")
    (pkg / "core" / "catalog.py").write_text("")
    (pkg / "sandbox" / "clean.py").write_text("from atm_assets.sandbox import other\n")
    (pkg / "sandbox" / "other.py").write_text("")
    (pkg / "sandbox" / "late.py").write_text("def f():\n    import atm_assets.core.catalog\n")
    (pkg / "sandbox" / "near.py").write_text("from ..core import catalog\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", pkg)
    assert foreign_imports() == {
        "atm_assets.sandbox.late": {"atm_assets.core.catalog"},
        "atm_assets.sandbox.near": {"atm_assets.core", "atm_assets.core.catalog"},
    }
