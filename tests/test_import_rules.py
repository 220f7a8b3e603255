"""Import boundaries, checked on the source: layers as ../shared/ARCHITECTURE.md draws them, private
modules stay inside their package, no import cycles, and edge code never reaches the Kubernetes client."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANNED = {"kubernetes", "kubeclient", "cloudcore", "nodegroup"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_edge_packages_do_not_import_the_kubernetes_client() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(imported_roots(path) & BANNED)}"
        for package in ("edgecore", "mappers")
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_roots(path) & BANNED
    ]
    assert offenders == []


def test_cloud_packages_reach_the_client_only_through_kubeclient() -> None:
    direct = [
        str(path.relative_to(ROOT))
        for package in ("cloudcore", "nodegroup")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "kubernetes" in imported_roots(path)
    ]
    assert direct == []


def test_edge_processes_speak_grpc_through_dmi_rpc_not_grpcio() -> None:
    """grpcio costs ~20 MB and three times dmi.rpc's CPU per call: edge code and dmi.rpc avoid it.
    (The generated ``api_pb2_grpc`` stays for mapper authors who want grpcio.)"""
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("edgecore", "mappers", "dmi/rpc")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "grpc" in imported_roots(path)
    ]
    assert offenders == []


def test_no_process_imports_a_test_only_dependency() -> None:
    """grpcio, grpcio-reflection and paho-mqtt are in the ``test`` extra only (pyproject.toml): no
    installed package imports them. Exempt: the generated ``*_pb2_grpc`` stubs kept for mapper authors
    who bring grpcio, and the ``generate`` commands (dev tools)."""
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(imported_roots(path) & {'grpc', 'grpc_reflection', 'paho'})}"
        for package in PROJECT
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.name.endswith("_pb2_grpc.py") and path.name != "generate.py"
        if imported_roots(path) & {"grpc", "grpc_reflection", "paho"}
    ]
    assert offenders == []


def test_one_mqtt_client_paho_only_in_tests_and_benches() -> None:
    """kubeshore.mqtt is the one MQTT client (edgecore's eventbus and the mapper SDK's sink); paho-mqtt
    is a reference peer for tests and benchmarks, not a runtime dependency."""
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("kubeshore", "edgecore", "mappers", "cloudcore", "dmi", "kubeapi", "crds")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "paho" in imported_roots(path)
    ]
    assert offenders == []


# Which project packages each package may import (its floor and the floors below). ``codegen`` is a
# build-time floor of its own: only generators (``<package>.generate``) import it (GENERATOR_ONLY).
PROJECT = ("codegen", "crds", "dmi", "cri", "k8sproto", "kubeapi", "kubeclient", "kubeshore", "cloudcore",
           "edgecore", "mappers", "nodegroup", "up")  # fmt: skip
GENERATOR_ONLY = {"codegen"}
ALLOWED = {
    "codegen": set(),  # names the generators as strings (codegen._registry): it sits below them
    "crds": set(),
    "dmi": {"crds"},
    "cri": set(),
    "k8sproto": set(),
    "kubeapi": {"crds", "k8sproto", "kubeshore"},  # kubeshore is the floor every package shares
    "kubeclient": {"kubeshore"},
    "kubeshore": {"crds"},
    "up": {"crds", "kubeclient", "kubeshore"},  # the platform on one machine: it watches the API it runs
    "cloudcore": {"crds", "dmi", "kubeapi", "kubeclient", "kubeshore", "nodegroup", "k8sproto"},
    "nodegroup": {"crds", "kubeapi", "kubeclient", "kubeshore"},
    "edgecore": {"crds", "dmi", "cri", "kubeapi", "kubeshore"},
    "mappers": {"crds", "dmi", "kubeshore"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            if "_pb2" in rel.name or (package == "k8sproto" and "api" in rel.parts):
                continue  # generated
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool) -> Iterator[str]:
    """Project modules ``path`` imports (``from a import b`` yields a and a.b); with
    ``top_level_only``, only those run at import time (not inside functions, not for type checking)."""
    tree = ast.parse(path.read_text(), str(path))

    def walk(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            yield node
            if top_level_only and isinstance(node, ast.If | ast.Try):
                yield from walk(
                    node.body + node.orelse + [s for h in getattr(node, "handlers", []) for s in h.body]
                )

    nodes = (
        list(walk(tree.body)) if top_level_only else [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    )
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        yield from (n for n in names if n in MODULES)


def _package_rule(module: str) -> set[str]:
    for prefix in sorted(ALLOWED, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return ALLOWED[prefix]
    return set()


def _is_generator(module: str) -> bool:
    return module.split(".")[-1] == "generate"


def test_packages_import_only_the_floors_below_them() -> None:
    offenders = []
    for module, path in MODULES.items():
        own = module.split(".")[0]
        allowed = _package_rule(module) | {own} | (GENERATOR_ONLY if _is_generator(module) else set())
        for imported in _imports(path, top_level_only=False):
            if imported.split(".")[0] not in allowed:
                offenders.append(f"{module} -> {imported}")
    assert offenders == [], "imports across layers (see ALLOWED):\n" + "\n".join(sorted(set(offenders)))


def test_only_generators_use_the_build_time_package() -> None:
    """codegen is not installed (pyproject's package list leaves it out): a process importing it would
    fail in the field. The generators import it, and every generator goes through it."""
    users = {
        module
        for module, path in MODULES.items()
        if not module.startswith("codegen")
        for imported in _imports(path, top_level_only=False)
        if imported.split(".")[0] in GENERATOR_ONLY
    }
    generators = {module for module in MODULES if _is_generator(module)}
    assert users == generators
    # Generators ship in the wheel beside their package but cannot run without codegen: no one imports them.
    importers = {
        f"{module} -> {imported}"
        for module, path in MODULES.items()
        for imported in _imports(path, top_level_only=False)
        if imported in generators and imported != module
    }
    assert importers == set()
    from codegen import GENERATORS

    assert set(GENERATORS) == generators, "codegen._registry.GENERATORS misses a generator"


def test_private_modules_stay_inside_their_package() -> None:
    offenders = []
    for module, path in MODULES.items():
        for imported in _imports(path, top_level_only=False):
            parent, _, last = imported.rpartition(".")
            if (
                last.startswith("_")
                and not last.startswith("__")
                and not (module == parent or module.startswith(parent + "."))
            ):
                offenders.append(f"{module} -> {imported}")
    assert offenders == [], "private modules imported from another package:\n" + "\n".join(
        sorted(set(offenders))
    )


def test_no_import_cycles() -> None:
    graph = {m: {i for i in _imports(p, top_level_only=True) if i != m} for m, p in MODULES.items()}
    # ``from pkg import name`` imports pkg's __init__; a package importing its own children is not a cycle.
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not m.startswith(d + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_boundary_check_sees_a_private_import(tmp_path: Path) -> None:
    """The rules above look at real imports: a cross-package private import is found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from edgecore.edgehub._hub import EdgeHub\n")
    assert list(_imports(probe, top_level_only=False)) == ["edgecore.edgehub._hub"]


def test_each_package_says_what_it_is_for() -> None:
    """A newcomer reads the package docstring first: one real sentence, not "x package."."""
    vague = []
    for package in PROJECT:
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
        first = doc.split("\n\n")[0]
        if len(first) < 40 or first.rstrip(".").lower() in (package, f"{package} package"):
            vague.append(f"{package}: {first!r}")
    assert vague == []
