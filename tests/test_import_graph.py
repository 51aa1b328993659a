"""The package's layering, read from the source: the TRL and veRL engines stand side by side on the
curriculum core, and no two subpackages depend on each other in a circle.

Command-line modules (`envtune/cli.py` and each subpackage's `cli.py`) are entry points: they wire
the parts together (`envtune tune` picks an engine), nothing but `envtune/cli.py` imports them, so
they count as nodes of their own above their subpackage."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "envtune"
SUBPACKAGES = ("bfcl", "env", "feedback", "rollout", "eval", "train", "verl", "curriculum", "sft", "report")


def imported_modules(path: Path) -> set[str]:
    """Every envtune module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from envtune import verl`
    return {name for name in found if name.split(".")[0] == "envtune"}


def module_name(path: Path) -> str:
    return ".".join(("envtune", *path.relative_to(PACKAGE).with_suffix("").parts))


def node(module: str) -> str | None:
    """The graph node of a module: its subpackage, or `<subpackage>.cli`; None for top-level modules."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in SUBPACKAGES:
        return None
    return f"{parts[1]}.cli" if parts[2:3] == ["cli"] else parts[1]


IMPORTS = {module_name(path): imported_modules(path) for path in PACKAGE.rglob("*.py")}


def test_the_engines_do_not_import_each_other():
    for module, imported in IMPORTS.items():
        if node(module) == "train":
            assert not [name for name in imported if node(name) == "verl"], module
        if node(module) == "verl":
            assert not [name for name in imported if node(name) == "train"], module


def test_only_the_top_level_command_line_imports_the_subcommands():
    for module, imported in IMPORTS.items():
        if module != "envtune.cli":
            assert not [name for name in imported if (node(name) or "").endswith(".cli")], module


def test_subpackages_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for module, imported in IMPORTS.items():
        source = node(module)
        if source is not None:
            graph.setdefault(source, set()).update(
                target for target in map(node, imported) if target is not None and target != source)
    assert {"curriculum", "train", "verl", "curriculum.cli"} <= set(graph)
    done: set[str] = set()

    def visit(current: str, path: tuple[str, ...]) -> None:
        assert current not in path, f"import cycle: {' -> '.join((*path, current))}"
        if current in done:
            return
        for target in sorted(graph.get(current, ())):
            visit(target, (*path, current))
        done.add(current)

    for start in sorted(graph):
        visit(start, ())
