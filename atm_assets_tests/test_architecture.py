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


# -- the dialect is chosen in one place --

# Backend names a module could test for instead of asking its dialect (the dialect modules'
# own names, and the spellings people use).
DIALECT_NAMES = {"postgres", "postgresql", "sqlite", "duckdb", "mysql"} | {
    p.stem
    for p in (PACKAGE / "core" / "dialects").glob("*.py")
    if p.stem not in ("__init__", "base")
}
# Where a backend name may be compared or used as a key: the dialects themselves. Passing a
# name on (db.py's `URL.create("sqlite", …)` for a config without a URL, the governor's host
# file) picks nothing and is not a comparison, so it needs no place here.
DIALECT_HOME = "atm_assets.core.dialects"


def _names_a_dialect(node: ast.AST) -> bool:
    """A backend name as a literal (alone or in a tuple/list/set), or an expression that reads
    one: `….dialect.name`, `database.dialect`, `url.get_backend_name()`, `url.drivername`."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value.lower() in DIALECT_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_dialect(e) for e in node.elts)
    text = ast.unparse(node)
    return (
        text.endswith(("dialect.name", ".dialect", "drivername"))
        or text == "dialect"
        or "get_backend_name(" in text
    )


def dialect_name_tests(home: str = DIALECT_HOME) -> dict[str, list[str]]:
    """Per module outside `home`: each place that picks by a backend's name, as `line: code` —
    a comparison (==, !=, in, is) with a name on either side, a dict keyed by names, a
    `case "postgresql":`."""
    found: dict[str, list[str]] = {}
    for name, path in _modules().items():
        if name == home or name.startswith(home + "."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                hit = any(_names_a_dialect(n) for n in [node.left, *node.comparators])
            elif isinstance(node, ast.Dict):
                hit = any(k is not None and _names_a_dialect(k) for k in node.keys)
            elif isinstance(node, ast.MatchValue):
                hit = _names_a_dialect(node.value)
            else:
                continue
            if hit:
                found.setdefault(name, []).append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_outside_the_dialects_picks_by_dialect_name():
    """Adding a target is adding a dialect module: nothing else asks which database it is."""
    assert dialect_name_tests() == {}


def test_the_checker_sees_a_dialect_name_test(tmp_path, monkeypatch):
    """The test above would fail on each way of picking by name; spec names, the dialects'
    own modules and passing a name on are not flagged."""
    pkg = tmp_path / "atm_assets"
    (pkg / "core" / "dialects").mkdir(parents=True)
    for init in (pkg, pkg / "core", pkg / "core" / "dialects"):
        (init / "__init__.py").write_text("")
    (pkg / "core" / "dialects" / "sqlite.py").write_text('if url.drivername == "sqlite":\n    x\n')
    (pkg / "writer.py").write_text(
        "def f(engine, db, url, spec):\n"
        '    if engine.dialect.name == "postgresql":\n'
        "        pass\n"
        '    if db.dialect in ("sqlite", "duckdb"):\n'
        "        pass\n"
        "    if url.get_backend_name() != kind:\n"
        "        pass\n"
        '    if spec.name == "daily":\n'
        "        pass\n"
        '    return URL.create("sqlite", database=spec.path)\n'
    )
    (pkg / "stores.py").write_text(
        'STORES = {"postgresql": object}\n'
        "def g(kind):\n"
        "    match kind:\n"
        '        case "DuckDB":\n'
        "            pass\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", pkg)
    assert dialect_name_tests() == {
        "atm_assets.writer": [
            "2: engine.dialect.name == 'postgresql'",
            "4: db.dialect in ('sqlite', 'duckdb')",
            "6: url.get_backend_name() != kind",
        ],
        "atm_assets.stores": ["1: {'postgresql': object}", "4: 'DuckDB'"],
    }


# -- Dagster's public API only --

# Private `dagster._…` modules the package may import, each with the reason: they change
# without notice between Dagster releases, so each one is a known cost of an upgrade.
PRIVATE_DAGSTER_ALLOWED = {
    "atm_assets.assets.checks": (
        "AssetCheckEvaluationTargetMaterializationData: not exported by Dagster 1.13, yet the "
        "one way to tie a per-partition check result to its materialisation when one run "
        "writes many partitions"
    ),
}


def private_dagster_imports() -> dict[str, set[str]]:
    """Per module of the package, the private Dagster modules it imports (`dagster._core…`,
    `from dagster import _core`), at module level or inside functions."""
    found: dict[str, set[str]] = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            private = {
                t
                for t in targets
                if t.startswith("dagster.") and any(p.startswith("_") for p in t.split(".")[1:])
            }
            if private:
                found.setdefault(name, set()).update(private)
    return found


def test_the_package_imports_no_private_dagster_module_but_the_allowed():
    """Every private import is allowed with a reason, and every allowance is still needed.
    (The tests may reach into Dagster to observe it; the package is what users run.)"""
    assert set(private_dagster_imports()) == set(PRIVATE_DAGSTER_ALLOWED)


def test_the_checker_sees_a_private_dagster_import(tmp_path, monkeypatch):
    pkg = tmp_path / "atm_assets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text("from dagster._core.storage.tags import PARTITION_NAME_TAG\n")
    (pkg / "late.py").write_text("def f():\n    import dagster._utils\n")
    (pkg / "under.py").write_text("from dagster import _check\n")
    (pkg / "public.py").write_text("from dagster import asset\nimport dagster_webserver\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", pkg)
    found = private_dagster_imports()
    assert set(found) == {"atm_assets.jobs", "atm_assets.late", "atm_assets.under"}
    assert "dagster._core.storage.tags" in found["atm_assets.jobs"]
    assert found["atm_assets.under"] == {"dagster._check"}
