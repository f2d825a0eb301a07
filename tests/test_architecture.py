"""Import rules from DESIGN.md, checked on the source: dependencies point inward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_LIBRARIES = {
    "ccxt",
    "sqlmodel",
    "sqlalchemy",
    "fastapi",
    "asyncio",
    "httpx",
    "tenacity",
    "uvicorn",
}
CORE_MODULES = ["domain", "orders", "events", "errors", "clock", "ports", "intake", "reconcile"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", ["algos", "routers", "risk"])
def test_pure_packages_import_no_io_and_no_clock(package: str) -> None:
    for path in python_files(package):
        imports = imported_modules(path)
        offending = {m for m in imports if top(m) in IO_LIBRARIES or m == "ems.clock"}
        offending |= {m for m in imports if m.startswith(("ems.venues", "ems.store", "ems.api"))}
        assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


@pytest.mark.parametrize("module", CORE_MODULES)
def test_domain_core_uses_the_standard_library_and_itself_only(module: str) -> None:
    (path,) = python_files("ems", module)
    third_party = {
        m for m in imported_modules(path) if top(m) not in {"ems", "algos", "routers", "__future__"}
    }
    for name in third_party:
        assert top(name) in __import__("sys").stdlib_module_names, f"{module} imports {name}"
    assert not {
        m for m in imported_modules(path) if m.startswith(("ems.venues", "ems.store", "ems.api"))
    }


def test_manager_uses_ports_never_concrete_adapters() -> None:
    imports = imported_modules(ROOT / "ems" / "manager.py")
    assert not {m for m in imports if m.startswith(("ems.venues", "ems.store", "ems.api"))}
    assert not {m for m in imports if top(m) in {"ccxt", "sqlmodel", "sqlalchemy", "tenacity"}}


def test_only_venues_and_store_touch_ccxt_sqlmodel_and_tenacity() -> None:
    allowed = ("ems/venues/", "ems/store/")
    for path in python_files("ems"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(allowed) or rel.startswith("ems/migrations/"):
            continue
        touched = {m for m in imported_modules(path) if top(m) in {"ccxt", "sqlmodel", "tenacity"}}
        assert not touched, f"{rel} imports {sorted(touched)}"


def test_api_talks_to_the_manager_never_to_venues() -> None:
    for path in python_files("ems", "api"):
        imports = imported_modules(path)
        assert not {m for m in imports if m.startswith("ems.venues")}, path.name
