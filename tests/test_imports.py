"""The library's modules import each other without a circle (one obvious file per concept, layered)."""

import ast

from encoderec import paths


def imports_of(source: str) -> set[str]:
    """The encoderec modules a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "encoderec":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("encoderec."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("encoderec.")}
    return found


def test_no_import_circle_between_modules():
    modules = {p.stem: p for p in paths.PACKAGE_DIR.glob("*.py") if p.stem not in ("__init__", "__main__")}
    graph = {name: imports_of(path.read_text(encoding="utf-8")) & set(modules) - {"__version__"}
             for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import circle: " + " -> ".join([*trail[trail.index(name):], name])
        if name not in done:
            for other in sorted(graph[name]):
                visit(other, (*trail, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
