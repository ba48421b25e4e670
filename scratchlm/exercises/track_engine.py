"""Track 1, the engine: build reverse-mode autodiff on :mod:`scratchlm.exercises.minigrad`.

The five exercises write one file, a function at a time: ``topological_order``,
``unbroadcast``, ``backward`` (which uses the first two), ``no_grad`` and ``train`` (which
trains a small perceptron with your engine). Each is graded on its own name in that file.
Gradients are graded against central differences of the scaffold's forward, so no answer
of yours is compared with a hidden one except ``unbroadcast``'s arrays and ``train``'s losses.
"""

import numpy as np

from scratchlm.exercises.errors import CaseFailure
from scratchlm.exercises.minigrad import Value
from scratchlm.exercises.runner import attempt
from scratchlm.exercises.tasks import EPS, GRADIENT_TOLERANCE, Task, TaskCase, compare

IMPORTS = """\
from contextlib import contextmanager

import numpy as np

from scratchlm.exercises.minigrad import Value, init_mlp, mlp
"""


def _stub(signature, doc, extra=""):
    return (f"{IMPORTS}\n\n{extra}def {signature}:\n    \"\"\"{doc}\"\"\"\n"
            "    raise NotImplementedError(\"write it\")\n")


# ------------------------------------------------------------------ topological order
def _graph(spec):
    """Values from [(name, [parent names])] in an order where parents come first; the last
    is the root."""
    nodes = {}
    for name, parents in spec:
        ps = [nodes[p] for p in parents]
        nodes[name] = Value(0.0, ps, [lambda g: g] * len(ps), name=name)
    return nodes[spec[-1][0]]


def _run_topo(student, inputs, config):
    (spec,) = inputs
    order = attempt("topological_order", student, _graph(spec))
    try:
        order = list(order)
    except TypeError:
        raise CaseFailure(f"topological_order returned {type(order).__name__}, not a list "
                          "of Values") from None
    if not all(isinstance(v, Value) for v in order):
        raise CaseFailure("topological_order must return the Values themselves, in order")
    return [v.name for v in order]


def _check_topo(prepared, names):
    (spec,) = prepared.inputs
    parents = {name: ps for name, ps in spec}
    reachable, stack = set(), [spec[-1][0]]
    while stack:
        name = stack.pop()
        if name not in reachable:
            reachable.add(name)
            stack.extend(parents[name])
    if len(names) != len(set(names)):
        twice = sorted({n for n in names if names.count(n) > 1})[:5]
        raise CaseFailure(f"these nodes appear more than once: {twice}; a node shared by "
                          "several paths must be visited once (keep a set of visited nodes)")
    if set(names) != reachable:
        missing = sorted(reachable - set(names))[:5]
        raise CaseFailure(f"{len(reachable - set(names))} reachable node(s) missing, e.g. "
                          f"{missing}" if missing else "it lists nodes the root does not reach")
    position = {name: i for i, name in enumerate(names)}
    for name in names:
        for parent in parents[name]:
            if position[parent] > position[name]:
                raise CaseFailure(f"{parent!r} comes after {name!r}, which was computed from "
                                  "it: every node must come after all the nodes it depends on")


def _names(rng, n):
    """``n`` distinct node names drawn from the seed."""
    return [f"v{k}" for k in rng.permutation(20 * n + 20)[:n]]


def _named(rng, shape):
    """[(name, [parent names])] from [(index, [parent indices])], the names drawn."""
    names = _names(rng, len(shape))
    return [(names[i], [names[p] for p in parents]) for i, parents in shape]


def _chain(rng, n):
    return _named(rng, [(0, [])] + [(i, [i - 1]) for i in range(1, n)])


def _random_dag(rng, n=10):
    """n nodes, each computed from 1 to 3 earlier ones (repeats allowed: x * x), the last
    from several, so that nodes and leaves are shared by many paths."""
    shape = [(0, []), (1, [])]
    for i in range(2, n):
        shape.append((i, [int(p) for p in rng.integers(0, i, size=rng.integers(1, 4))]))
    shape.append((n, [n - 1, n - 2, int(rng.integers(0, n - 2))]))
    return _named(rng, shape)


TOPO_CASES = (
    TaskCase("a chain of 3 to 6", lambda rng: (_chain(rng, int(rng.integers(3, 7))),)),
    TaskCase("a diamond: one node feeds two, both feed the root",
             lambda rng: (_named(rng, [(0, []), (1, [0]), (2, [0]), (3, [1, 2])]),)),
    TaskCase("x * x: one node twice as a parent", lambda rng: (_named(rng, [(0, []),
                                                                            (1, [0, 0])]),)),
    TaskCase("a leaf alone", lambda rng: (_named(rng, [(0, [])]),)),
    TaskCase("a graph of 11 nodes, shared nodes and leaves", lambda rng: (_random_dag(rng),)),
    TaskCase("a chain of 5,000 or more (deeper than Python's recursion)",
             lambda rng: (_chain(rng, 5000 + int(rng.integers(0, 500))),)),
)

# ------------------------------------------------------------------------ unbroadcast
def _normal(shape):
    return lambda rng: (rng.standard_normal(shape),)


UNBROADCAST_CASES = tuple(
    TaskCase(f"grad {g} to {s}", _normal(g), {"shape": s})
    for g, s in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)), ((2, 3, 4), (3, 1)),
                 ((5,), ()), ((4, 1), (1, 1)), ((2, 1, 3), (1, 3))])

# ------------------------------------------------------------------------- backward
#: name: (leaf names, leaf shapes, the scalar loss from the leaves and a cotangent C, C's shape)
GRAPHS = {
    "x used three times: tanh(x·x + x)":
        (("x",), ((3, 4),), lambda x, C: (((x * x + x).tanh()) * C).sum(), (3, 4)),
    "a diamond through a broadcast bias b (4,)":
        (("a", "b"), ((3, 4), (4,)), lambda a, b, C: (((a + b) * (a + b).tanh()) * C).sum(),
         (3, 4)),
    "a layer: tanh(x W + b)":
        (("x", "W", "b"), ((5, 3), (3, 2), (2,)),
         lambda x, W, b, C: ((x @ W + b).tanh() * C).sum(), (5, 2)),
    "size-1 axes: a (3, 1) times b (1, 4)":
        (("a", "b"), ((3, 1), (1, 4)), lambda a, b, C: ((a * b).exp() * C * 0.1).sum(), (3, 4)),
    "a 0-d scale s": (("x", "s"), ((2, 3), ()), lambda x, s, C: ((x * s - s) * C).sum(), (2, 3)),
}


def _graph_inputs(label):
    _, shapes, _, c_shape = GRAPHS[label]
    return lambda rng: tuple(rng.standard_normal(s) for s in shapes + (c_shape,))


def _forward(label, arrays):
    *leaves, C = arrays
    return float(GRAPHS[label][2](*[Value(a) for a in leaves], Value(C)).data)


def _expect_backward(inputs, config, rng):
    label = config["graph"]
    grads = []
    for i in range(len(inputs) - 1):
        arrays = [a.copy() for a in inputs]
        flat, grad = arrays[i].reshape(-1), np.empty(arrays[i].size)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + EPS
            plus = _forward(label, arrays)
            flat[j] = original - EPS
            minus = _forward(label, arrays)
            flat[j] = original
            grad[j] = (plus - minus) / (2 * EPS)
        grads.append(grad.reshape(inputs[i].shape))
    return grads


def _run_backward(student, inputs, config):
    names, _, build, _ = GRAPHS[config["graph"]]
    *arrays, C = inputs
    leaves = [Value(a, name=n) for a, n in zip(arrays, names)]
    attempt("backward", student, build(*leaves, Value(C)))
    for leaf in leaves:
        if leaf.grad is None:
            raise CaseFailure(f"no gradient reached {leaf.name}: leaf.grad is still None")
    return [np.asarray(leaf.grad, dtype=np.float64) for leaf in leaves]


def _check_backward(prepared, grads):
    names = GRAPHS[prepared.config["graph"]][0]
    for name, grad, want in zip(names, grads, prepared.expected):
        compare(grad, want, (f"the gradient of {name}",), GRADIENT_TOLERANCE,
                against="central differences")


BACKWARD_CASES = tuple(TaskCase(label, _graph_inputs(label), {"graph": label})
                       for label in GRAPHS)


# --------------------------------------------------------------------------- no_grad
def _run_no_grad(student, inputs, config):
    a, b = (Value(x, name=name) for x, name in zip(inputs, "ab"))
    results = {}
    Value.recording = True
    try:
        with attempt("no_grad()", student):
            results["nothing is recorded inside"] = (a * b).parents == ()
        results["recording is back on after the block"] = Value.recording is True
        with attempt("no_grad()", student):
            with attempt("no_grad()", student):
                pass
            results["still off after a nested block ends"] = (a * b).parents == ()
        results["on again after nested blocks"] = Value.recording is True
        try:
            with attempt("no_grad()", student):
                raise KeyError("raised inside the block")
        except KeyError:
            pass
        results["back on after an exception inside"] = Value.recording is True
        results["recorded again after the blocks"] = len((a * b).parents) == 2
    except CaseFailure:
        raise
    except Exception as error:
        raise CaseFailure(f"using no_grad() as a context manager raised "
                          f"{type(error).__name__}: {error}") from None
    finally:
        Value.recording = True
    return results


def _check_no_grad(prepared, results):
    for what in prepared.expected:
        if results.get(what) is not True:
            raise CaseFailure(f"wrong: {what}")


NO_GRAD_PROBES = ("nothing is recorded inside", "recording is back on after the block",
                  "still off after a nested block ends", "on again after nested blocks",
                  "back on after an exception inside", "recorded again after the blocks")

# ----------------------------------------------------------------------------- train
XOR = (np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]),
       np.array([[0.0], [1.0], [1.0], [0.0]]))


def _xor(rng):
    order = rng.permutation(4)
    return XOR[0][order], XOR[1][order]


def _regression(rng):
    X = rng.standard_normal((16, 3))
    return X, np.tanh(X @ rng.standard_normal((3, 2)))


def _check_train(prepared, losses):
    compare(losses, prepared.expected, ("the losses",), dict(rtol=1e-6, atol=1e-9),
            against="the losses of a correct engine from the same start")
    if not losses[-1] < 0.5 * losses[0]:
        raise CaseFailure(f"the loss went from {losses[0]:.4g} to {losses[-1]:.4g}: it did "
                          "not learn")


TASKS = [
    Task(
        name="engine_topo", title="Topological order of a graph", track=1, points=4,
        formula="order(root): every node after all the nodes it was computed from",
        task="Return every Value the root depends on (and the root) exactly once, inputs "
             "first, root last. Shared nodes appear once; a 5,000-deep chain must work.",
        hints=("Depth-first search: a node goes into the list after all its parents have.",
               "Keep a set of visited nodes (by id) so a shared node is listed once.",
               "Python stops recursing at about 1,000 calls: use your own stack of "
               "(node, iterator over its parents) pairs instead of recursion."),
        entry="topological_order",
        stub=_stub("topological_order(root)",
                   "Every Value ``root`` depends on, and root, each once: inputs first, root "
                   "last.\n\n    Follow ``node.parents``."),
        solution="engine:topological_order", cases=TOPO_CASES, run=_run_topo,
        check=_check_topo, expect=lambda inputs, config, rng: None,
        hint_for={"recursion": 3},
        graded="by properties (every node once, each after the nodes it was computed from, "
               "a deep chain without recursion); no reference output"),
    Task(
        name="engine_unbroadcast", title="Summing a gradient back to its input's shape",
        track=1, points=3,
        formula="a of shape s broadcast to shape S:  ∂L/∂a = Σ over the axes broadcasting "
                "added or stretched of ∂L/∂(broadcast a)",
        task="Given grad in the broadcast shape, return it summed to ``shape``: over leading "
             "axes that broadcasting added, and over axes of size 1 in ``shape`` that it "
             "stretched (keeping them).",
        hints=("Each copy broadcasting made of an entry received part of the gradient; the "
               "entry's gradient is their sum.",
               "First sum away the extra leading axes (grad.ndim − len(shape) of them).",
               "Then, for each axis where shape has 1 and grad does not, sum with "
               "keepdims=True."),
        entry="unbroadcast",
        stub=_stub("unbroadcast(grad, shape)",
                   "``grad`` (the broadcast shape) summed back to ``shape``."),
        solution="engine:unbroadcast", cases=UNBROADCAST_CASES, input_names=("grad",),
        hint_for={"shape": 3}),
    Task(
        name="engine_backward", title="The backward pass, accumulating through shared nodes",
        track=1, points=6,
        formula="∂L/∂p = Σ over the children c of p of local_grad(c → p)(∂L/∂c), summed to "
                "p's shape",
        task="Set root.grad (ones when no grad is given), visit the nodes from the root back "
             "to the inputs, and add each parent's share (node.local_grads[i](node.grad), "
             "summed to the parent's shape) into parent.grad. Uses your topological_order "
             "and unbroadcast, which the same file defines.",
        hints=("reversed(topological_order(root)) visits every node after all the nodes "
               "computed from it, so its grad is complete when you reach it.",
               "A node used twice gets two shares: add them (parent.grad = share the first "
               "time, parent.grad + share after), never overwrite.",
               "local_grads give shares in the broadcast shape: unbroadcast(share, "
               "parent.data.shape)."),
        entry="backward", needs=("topological_order", "unbroadcast"),
        stub=_stub("backward(root, grad=None)",
                   "Fill ``.grad`` of every Value ``root`` depends on with ∂root/∂value "
                   "(times ``grad``).",
                   extra="# your topological_order and unbroadcast from the previous "
                         "exercises go here\n\n\n"),
        solution="engine:backward", cases=BACKWARD_CASES, run=_run_backward,
        check=_check_backward, expect=_expect_backward,
        graded="gradients against central differences of the graph's forward (stored "
               "here); no reference output"),
    Task(
        name="engine_no_grad", title="no_grad: a context manager that stops recording",
        track=1, points=3,
        formula="inside `with no_grad():` new Values record no parents; afterwards, as before",
        task="Write no_grad() so that Value.recording is False inside the block and back to "
             "what it was afterwards — after nested blocks and after an exception too.",
        hints=("contextlib.contextmanager turns a generator with one yield into a context "
               "manager.",
               "Save the old Value.recording before setting it to False, and restore the "
               "saved value (not True) afterwards: that is what makes nesting work.",
               "Restore it in a finally: clause, so an exception inside the block does not "
               "leave recording off."),
        entry="no_grad",
        stub=_stub("no_grad()", "Inside the block, Value.recording is False.",
                   extra="@contextmanager\n"),
        solution="engine:no_grad",
        cases=(TaskCase("six probes", lambda rng: (rng.standard_normal(2),
                                                   rng.standard_normal(2))),),
        run=_run_no_grad, check=_check_no_grad,
        expect=lambda inputs, config, rng: NO_GRAD_PROBES,
        graded="by six probes of recording inside, after, nested blocks and an exception "
               "(their names stored here); no reference output"),
    Task(
        name="engine_train", title="Train a perceptron with your engine", track=1, points=4,
        formula="loss = mean((mlp(params, X) − Y)²);  p ← p − lr · ∂loss/∂p",
        task="params = init_mlp(X.shape[1], hidden, Y.shape[1], seed); for each step: clear "
             "every p.grad, compute the loss with mlp(params, X), run your backward, update "
             "p.data; return the list of the losses (floats, before each update).",
        hints=("Gradients accumulate across backward calls: set p.grad = None before each "
               "step, or the second step follows the sum of two gradients.",
               "Update p.data with a new array (p.data = p.data - lr * p.grad), after "
               "backward has filled every gradient.",
               "The loss is (d * d).mean() with d = mlp(params, X) - Y; record "
               "float(loss.data) before the update."),
        entry="train", needs=("topological_order", "unbroadcast", "backward"),
        stub=_stub("train(X, Y, steps, lr, hidden=8, seed=0)",
                   "Train init_mlp(...) on (X, Y) for ``steps`` steps; return the losses.",
                   extra="# your topological_order, unbroadcast and backward go here\n\n\n"),
        solution="engine:train", input_names=("X", "Y", "steps", "lr"),
        cases=(TaskCase("XOR (rows in a drawn order), 300 steps, lr near 0.5",
                        lambda rng: _xor(rng) + (300, round(float(rng.uniform(0.45, 0.55)), 3))),
               TaskCase("a regression, 16 rows, 40 steps", lambda rng: _regression(rng)
                        + (40, 0.2), {"hidden": 5, "seed": 3})),
        check=_check_train),
]
