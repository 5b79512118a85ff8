"""The package's shape, as a newcomer meets it: layers without import cycles, modules
of one job and a readable size, public functions whose calls read as sentences."""

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

import helpers

PACKAGE = Path(helpers.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__"))


def imports_of(path: Path) -> set[str]:
    """The package's modules that a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "helpers":
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "helpers."
        ):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[1] for a in node.names if a.name.startswith("helpers.")
            }
    return found - {path.stem}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` ({module: modules it imports}) as a path, or None."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return None


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        "a",
        "b",
        "c",
        "a",
    ]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_no_import_cycle():
    graph = {module: imports_of(PACKAGE / f"{module}.py") for module in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    # The bottom layers import nothing of the package above them.
    assert imports_of(PACKAGE / "files.py") == imports_of(PACKAGE / "hosts.py") == set()
    assert imports_of(PACKAGE / "config.py") == {"files", "hosts"}


@pytest.mark.parametrize("module", MODULES)
def test_a_module_says_its_job_and_stays_readable(module):
    source = (PACKAGE / f"{module}.py").read_text()
    assert ast.get_docstring(ast.parse(source)), f"{module}.py has no docstring"
    assert source.count("\n") <= 350, f"{module}.py has {source.count(chr(10))} lines"


def positional(function) -> int:
    """How many parameters a call can pass by position (self and cls not counted)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = inspect.signature(function).parameters.values()
    return sum(p.kind in kinds and p.name not in ("self", "cls") for p in parameters)


def public_functions(module):
    for name, item in vars(module).items():
        if name.startswith("_") or getattr(item, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(item):
            yield name, item
        elif inspect.isclass(item):
            record = dataclasses.is_dataclass(item) or hasattr(item, "_fields")
            for method, function in vars(item).items():
                if record and method == "__init__":  # a record's fields, by name
                    continue
                if inspect.isfunction(function) and (
                    not method.startswith("_") or method == "__init__"
                ):
                    yield f"{name}.{method}", function


def test_public_functions_take_at_most_six_positional_parameters():
    long = {
        f"{module}.{name}": positional(function)
        for module in MODULES
        for name, function in public_functions(
            importlib.import_module(f"helpers.{module}")
        )
        if positional(function) > 6
    }
    assert not long, long
