"""The package's layers, as docs/architecture.md draws them, checked on every import in plugins/.

A module may import from its own layer or lower ones, never from a higher one; no two modules import
each other, directly or round a circle; the provider's runtime never imports the sandbox; and no module
grows past 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
MAX_MODULE_LINES = 400

# Lowest first; a module belongs to the first entry its dotted name starts with.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "cxone_provider.compat",
        "cxone_provider.exceptions",
        "cxone_provider.response",
        "cxone_provider.domain",
        "cxone_provider.conditions",
    ),
    ("cxone_provider.client",),
    ("cxone_provider.hooks", "cxone_provider.metrics"),
    ("cxone_provider.sweeps", "cxone_provider.links", "cxone_provider.assets", "cxone_provider.lineage"),
    ("cxone_provider.operators", "cxone_provider.sensors", "cxone_provider.triggers"),
    ("cxone_provider.ui",),
    (
        "cxone_provider.plugin",
        "cxone_provider.policies",
        "cxone_provider.doctor",
        "cxone_provider.get_provider_info",
        "cxone_provider.testing",
        "cxone_provider",
    ),
)
# The only provider module that may start or drive the sandbox: the pytest helpers users import.
SANDBOX_USERS = frozenset({"cxone_provider.testing"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PLUGINS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PLUGINS.rglob("*.py"))}
PROVIDER_MODULES = sorted(name for name in MODULES if name.split(".")[0] == "cxone_provider")


def layer_of(module: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return level
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")


def imported_modules(module: str) -> set[str]:
    """Every module of plugins/ that ``module`` imports, at any depth of its code (lazy imports too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES and name != module)
    return found


IMPORTS = {module: imported_modules(module) for module in MODULES}


@pytest.mark.parametrize("module", PROVIDER_MODULES)
def test_a_module_imports_only_its_own_layer_or_lower(module: str) -> None:
    upward = sorted(
        imported
        for imported in IMPORTS[module]
        if imported in PROVIDER_MODULES and layer_of(imported) > layer_of(module)
    )
    assert upward == [], f"{module} (layer {layer_of(module)}) imports a higher layer: {upward}"


def test_no_modules_import_each_other_round_a_circle() -> None:
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(IMPORTS[module]):
            if state.get(imported) == "open":
                circles.append([*trail[trail.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*trail, imported])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_providers_runtime_never_imports_the_sandbox() -> None:
    users = sorted(
        module
        for module in PROVIDER_MODULES
        if any(imported.split(".")[0] == "cxone_sandbox" for imported in IMPORTS[module])
    )
    assert set(users) <= SANDBOX_USERS, users


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_the_size_limit(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{MODULES[module]} has {lines} lines"
