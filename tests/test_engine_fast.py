"""The two backward passes and the one hook between the reference library and the fast layer.

The reference engine (``scratchlm/autograd/engine.py``) makes a new array for every
gradient; the fast layer's (``scratchlm/fast/engine.py``) reuses gradient buffers and adds
into them in place. They must give the same gradients to the bit (float64, a GPT step with
gradient accumulation, with the reference ops and with the fast ones). Fast mode picks the
engine through ``scratchlm.autograd.dispatch.faster``, the only hook, and the arrows run one
way: autograd, ops and optim never import ``scratchlm.fast``, not even inside a function,
and those packages import each other in no circle.
"""

import ast
import pathlib

import numpy as np
import pytest

import scratchlm as sl
from scratchlm.autograd import dispatch, engine
from scratchlm.fast import engine as fast_engine
from scratchlm.models import GPT, GPTConfig

PACKAGE = pathlib.Path(sl.__file__).parent
ENGINES = {"reference": None, "fast": fast_engine.run_backward_in_place}


def use_engine(monkeypatch, which):
    """The backward pass ``which`` runs, whatever fast mode says (the ops still follow it)."""
    looked_up = dispatch.faster

    def faster(reference, device):
        if reference is engine.run_backward:
            return ENGINES[which]
        return looked_up(reference, device)
    monkeypatch.setattr(dispatch, "faster", faster)


def gpt_gradients(fast_ops, micro_batches=2):
    """Every parameter's gradient after ``micro_batches`` backward passes of a float64 GPT
    (the second adds into the first's ``.grad``)."""
    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16,
                          dropout=0.0))
    model.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    with sl.use_fast(fast_ops):
        for _ in range(micro_batches):
            ids = rng.integers(0, 13, size=(3, 8))
            model(ids, np.roll(ids, -1, axis=1))[1].backward()
    return {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("fast_ops", [True, False], ids=["fast-ops", "reference-ops"])
def test_the_engines_give_bit_identical_gradients_on_a_gpt_step(fast_ops, monkeypatch):
    grads = {}
    for which in ENGINES:
        with monkeypatch.context() as patch:
            use_engine(patch, which)
            grads[which] = gpt_gradients(fast_ops)
    assert grads["fast"].keys() == grads["reference"].keys() and len(grads["fast"]) > 10
    for name, reference in grads["reference"].items():
        assert reference.dtype == np.float64 and np.abs(reference).max() > 0, name
        np.testing.assert_array_equal(grads["fast"][name], reference, err_msg=name)


def test_fast_mode_picks_the_engine():
    with sl.use_fast(True):
        assert dispatch.faster(engine.run_backward, "cpu") is fast_engine.run_backward_in_place
    with sl.use_fast(False):
        assert dispatch.faster(engine.run_backward, "cpu") is None


@pytest.mark.parametrize("which", ENGINES)
def test_gradients_are_new_arrays_nobody_else_holds(which, monkeypatch):
    """``a + b`` passes its incoming gradient on to both inputs unchanged: each leaf still
    gets an array of its own, and the caller's ``grad`` is never written into."""
    use_engine(monkeypatch, which)
    a = sl.tensor(np.ones(3), requires_grad=True)
    b = sl.tensor(np.ones(3), requires_grad=True)
    seed = np.array([1.0, 2.0, 3.0])
    (a + b).backward(seed)
    assert a.grad is not b.grad and a.grad is not seed and b.grad is not seed
    a.grad *= 10
    np.testing.assert_array_equal(b.grad, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(seed, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("which", ENGINES)
def test_a_tensor_used_many_times_sums_its_gradients(which, monkeypatch):
    """y = x·x + 3x + x  ⇒  ∂y/∂x = 2x + 4, through Mul, Mul by a number and Add; twice
    (the second backward adds into .grad)."""
    use_engine(monkeypatch, which)
    x = sl.tensor(np.array([1.0, -2.0]), requires_grad=True)
    for expected in ([6.0, 0.0], [12.0, 0.0]):
        (x * x + 3 * x + x).sum().backward()
        np.testing.assert_array_equal(x.grad, expected)


# ------------------------------------------------------------------ the arrows, read off
def imports_of(path):
    """Every module ``path`` imports, at the top or inside a function: (module, names)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, tuple(alias.name for alias in node.names)))
    return found


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages):
    """{module: modules it imports} for every module of ``packages`` (``from p import m``
    counts as importing the module p.m where there is one)."""
    modules = {module_name(p): p for package in packages
               for p in (PACKAGE / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for module, names in imports_of(path):
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            targets |= set(submodules) or ({module} if module in modules else set())
        graph[name] = targets
    return graph


def test_autograd_ops_and_optim_never_import_the_fast_layer():
    for package in ("autograd", "ops", "optim"):
        for path in (PACKAGE / package).rglob("*.py"):
            for module, _ in imports_of(path):
                assert not module.startswith("scratchlm.fast"), (path, module)


def test_the_engine_packages_import_each_other_in_no_circle():
    graph = import_graph(["autograd", "ops", "optim", "fast"])
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(
                path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)
    for module in sorted(graph):
        visit(module)
    assert "scratchlm.autograd.dispatch" in graph["scratchlm.fast.registry"]
