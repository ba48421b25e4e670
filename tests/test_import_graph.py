"""The library's imports form a tree that runs one way: no import circle anywhere in
``scratchlm/`` (function-local imports counted, the exercises included), and no arrow back
up — models never import training, autograd and optim never import the fast layer, the
layers never import the models, viz never imports training (it reads a run folder by
:mod:`scratchlm.runs`'s names), and the run folder never imports the loop."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "scratchlm")


def module_files():
    """{dotted module name: path} of every file in scratchlm/ (a package by its name)."""
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def import_graph():
    """{module: the scratchlm modules it imports}, every import statement counted (at the
    top and inside functions). ``from package import name`` is an arrow to the module
    ``package.name`` when there is one, else to the package."""
    modules = module_files()
    graph = {}
    for module, path in modules.items():
        is_package = path.endswith("__init__.py")
        targets = set()
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = module.split(".")
                    base = parts if is_package else parts[:-1]
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    name = f"{source}.{alias.name}"
                    targets.add(name if name in modules else source)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_local_imports():
    graph = import_graph()
    assert "scratchlm.text.gpt2_files" in graph["scratchlm.pretrain"]  # imported in a function
    assert "scratchlm.runs" in graph["scratchlm.train"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_there_is_no_import_circle_in_the_library():
    found = circles(import_graph())
    assert found == [], "import circles: " + "; ".join(" ↔ ".join(c) for c in found)


def below(graph, lower, higher):
    """The arrows from modules under ``lower`` to modules under any of ``higher``."""
    def under(module, prefix):
        return module == prefix or module.startswith(prefix + ".")

    return [(source, target) for source, targets in graph.items() if under(source, lower)
            for target in targets if any(under(target, h) for h in higher)]


def test_no_arrow_runs_back_up():
    graph = import_graph()
    training = ["scratchlm.train", "scratchlm.runs", "scratchlm.translate",
                "scratchlm.pretrain", "scratchlm.finetune", "scratchlm.prompting",
                "scratchlm.__main__"]
    assert below(graph, "scratchlm.models", training) == []
    assert below(graph, "scratchlm.nn", ["scratchlm.models", *training]) == []
    assert below(graph, "scratchlm.autograd", ["scratchlm.fast"]) == []
    assert below(graph, "scratchlm.optim", ["scratchlm.fast", *training]) == []
    assert below(graph, "scratchlm.viz", [t for t in training if t != "scratchlm.runs"]) == []
    assert below(graph, "scratchlm.runs", ["scratchlm.train", "scratchlm.viz"]) == []
    assert below(graph, "scratchlm.checks", ["scratchlm"]) == [
        ("scratchlm.checks", "scratchlm.errors")]  # checks sit just above the errors
    assert graph["scratchlm.errors"] == set()
