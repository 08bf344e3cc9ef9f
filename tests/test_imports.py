"""The package's folders are its layers, and a module imports only from its own layer or the layers below it:

    core (errors, files, paths, precision) < data < models < pipeline < report < the command line

and no two modules import each other, directly or through others."""

import ast
from pathlib import Path

from encoderec.core import paths

LAYERS = ("core", "data", "models", "pipeline", "report")


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name below encoderec ("models.tiger", "cli")."""
    found = {}
    for path in paths.PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(paths.PACKAGE_DIR).with_suffix("").parts
        if parts[-1] not in ("__init__", "__main__"):
            found[".".join(parts)] = path
    return found


def imports_of(source: str, known: set[str]) -> set[str]:
    """The encoderec modules a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("encoderec"):
            base = node.module.removeprefix("encoderec").lstrip(".")
            names = [f"{base}.{a.name}".lstrip(".") for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("encoderec.") for a in node.names if a.name.startswith("encoderec.")]
        found |= {name for name in names if name in known}
    return found


def layer(module: str) -> int:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else len(LAYERS)


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path.read_text(encoding="utf-8"), set(found)) - {name} for name, path in found.items()}


def test_every_module_lives_in_a_layer_but_the_command_line():
    assert {name for name in modules() if layer(name) == len(LAYERS)} == {"cli"}


def test_modules_import_only_from_their_layer_or_below():
    upward = [f"{name} imports {other}" for name, imported in graph().items() for other in imported
              if layer(other) > layer(name)]
    assert not upward


def test_no_import_circle_between_modules():
    edges = graph()
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import circle: " + " -> ".join([*trail[trail.index(name):], name])
        if name not in done:
            for other in sorted(edges[name]):
                visit(other, (*trail, name))
            done.add(name)

    for name in sorted(edges):
        visit(name, ())
