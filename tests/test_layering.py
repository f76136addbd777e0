"""The layering of ARCHITECTURE.md, checked on the source: no upward import, no import cycle.

Every import statement counts, also those inside functions (a lazy import is still a dependency). Layers, bottom
to top (a module may import from lower layers and from its own package, never from above or from a peer):

  0 flame                         the head model; imports nothing from simadv_jax
  1 report, devices, batching,    leaves: plain data to files; the device set-up; batching over devices;
    fetch                         fetching packaged models into the cache
  2 params, render
  3 simulator, recognizers
  4 evaluate                      the hot path and the host batcher
  5 setup                         a study's pieces from flag values
  6 search, training, realism, samples, regions, sweep
  7 benchmarks, weakened         weakened: the experiment that trains recognizers and sweeps them
  8 launch                        entry points
"""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("flame", "simadv_jax", "launch")
LAYERS = {
    "flame": 0,
    "simadv_jax.report": 1, "simadv_jax.devices": 1, "simadv_jax.batching": 1, "simadv_jax.fetch": 1,
    "simadv_jax.params": 2, "simadv_jax.render": 2,
    "simadv_jax.simulator": 3, "simadv_jax.recognizers": 3,
    "simadv_jax.evaluate": 4,
    "simadv_jax.setup": 5,
    "simadv_jax.search": 6, "simadv_jax.training": 6, "simadv_jax.realism": 6, "simadv_jax.samples": 6,
    "simadv_jax.regions": 6,
    "simadv_jax.sweep": 6,
    "simadv_jax.benchmarks": 7, "simadv_jax.weakened": 7,
    "launch": 8,
}


def _modules() -> dict[str, str]:
    """Dotted module name -> file path, for every .py file of the project's packages."""
    found = {}
    for package in PACKAGES:
        for directory, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    found[".".join(parts)] = path
    return found


def _imports(module: str, path: str, modules: dict) -> set[str]:
    """Project modules `module` imports anywhere in its file (`from p import m` counts as p.m when m is a
    module, else as p)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # "a.b.c" of an attribute -> its module "a.b"
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def _group(module: str) -> str:
    """The LAYERS key a module belongs to (its longest prefix in LAYERS); the bare `simadv_jax` package (its
    __init__, which must import nothing of the project) is layer 0."""
    if module == "simadv_jax":
        return "flame"
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        if ".".join(parts[:size]) in LAYERS:
            return ".".join(parts[:size])
    raise AssertionError(f"{module} is in no layer of tests/test_layering.py; add it")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {module: _imports(module, path, modules) for module, path in modules.items()}


def test_every_module_has_a_layer_and_imports_only_downwards():
    upward = []
    for module, targets in _graph().items():
        group = _group(module)
        for target in targets:
            other = _group(target)
            if other != group and LAYERS[other] >= LAYERS[group]:
                upward.append(f"{module} (layer {LAYERS[group]}) imports {target} (layer {LAYERS[other]})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_flame_imports_nothing_from_simadv_jax_and_no_private_jax():
    graph = _graph()
    assert not [t for m, ts in graph.items() if m.startswith("flame") for t in ts if not t.startswith("flame")]
    private = []
    for module, path in _modules().items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            name = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            if (name or "").startswith("jax._src") or any(n.startswith("jax._src") for n in names):
                private.append(module)
    # devices.barrier needs the coordination-service client, which JAX only exposes privately (BUILD.md says why).
    assert private == ["simadv_jax.devices"], private


def test_the_checker_sees_a_planted_upward_import(tmp_path, monkeypatch):
    """The checks can fail: a flame module that imports simadv_jax is reported."""
    fake = {"flame.fake": str(tmp_path / "fake.py"), "simadv_jax.evaluate": str(tmp_path / "evaluate.py")}
    (tmp_path / "fake.py").write_text("def f():\n    from simadv_jax.evaluate import make_evaluate\n")
    (tmp_path / "evaluate.py").write_text("import flame.fake\n")
    graph = {m: _imports(m, p, fake) for m, p in fake.items()}
    assert graph == {"flame.fake": {"simadv_jax.evaluate"}, "simadv_jax.evaluate": {"flame.fake"}}
