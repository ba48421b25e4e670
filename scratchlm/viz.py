"""Pictures for learners, on matplotlib: the recorded computation graph, attention weights,
embeddings, a beam search's tree, a learning-rate schedule, gradient norms and loss curves.

Every function returns a :class:`matplotlib.figure.Figure` (:func:`draw_graph` returns the
Graphviz source when the ``graphviz`` package is installed). In a notebook, leave the figure
as the cell's last value to show it; in a script, ``fig.savefig("picture.png")``. The figures
are made with :class:`~matplotlib.figure.Figure` itself, not ``pyplot``: nothing here calls
``plt.show()``, registers a figure with pyplot or changes matplotlib's backend, so the
pictures never appear twice and a notebook's own plots keep working.

    from scratchlm import viz
    viz.draw_graph(loss)                          # before loss.backward() frees the graph
    viz.attention_heatmap(weights, tokens, tokens)
    viz.embedding_map(model.transformer.wte.weight, labels)
    viz.loss_curves("runs/shakespeare")
"""

import math
import numbers
import os
import re
from collections.abc import Mapping

import numpy as np

from scratchlm import backend
from scratchlm.errors import ArgumentError, ArgumentTypeError, RunNotFoundError

__all__ = ["draw_graph", "attention_heatmap", "embedding_map", "beam_tree", "beam_search_tree",
           "lr_schedule", "gradient_norms", "loss_curves", "history_curves", "graph_nodes"]


_figure_class = []


def _figure(width, height):
    """A Figure with an Agg canvas of its own: drawn and saved without pyplot. It shows
    itself in a notebook (``_repr_png_``) even where pyplot was never imported."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not _figure_class:

        class NotebookFigure(Figure):
            """A matplotlib Figure that IPython displays as a PNG."""

            def _repr_png_(self):
                import io

                buffer = io.BytesIO()
                self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
                return buffer.getvalue()

        _figure_class.append(NotebookFigure)
    fig = _figure_class[0](figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _host_array(where, name, value, ndims):
    """``value`` (a Tensor, a backend array or nested lists) as a float64 NumPy array whose
    number of dimensions is one of ``ndims``."""
    from scratchlm.autograd import Tensor

    if isinstance(value, Tensor):
        value = value.data
    try:
        array = np.asarray(backend.to_numpy(value) if hasattr(value, "shape") else value,
                           dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{where}: {name} must be an array or a Tensor of numbers, "
                                f"got {type(value).__name__}", where=where, name=name,
                                value=value) from None
    if array.ndim not in ndims:
        wanted = " or ".join(f"{n}-D" for n in ndims)
        raise ArgumentError(f"{where}: {name} has shape {array.shape}; expected a {wanted} "
                            "array", where=where, name=name, value=value)
    return array


def _labels(where, name, labels, count, what):
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != count:
        raise ArgumentError(f"{where}: {len(labels)} {name} for {count} {what}; give one "
                            f"label per {what[:-1]} (or None)", where=where, name=name,
                            value=labels)
    return labels


# -------------------------------------------------------------------- the computation graph
class GraphNode:
    """One node of a recorded graph: a tensor (``kind="tensor"``) or an op (``"op"``)."""

    __slots__ = ("key", "kind", "label", "obj")

    def __init__(self, key, kind, label, obj):
        self.key, self.kind, self.label, self.obj = key, kind, label, obj

    def __repr__(self):
        return f"GraphNode({self.kind}, {self.label!r})"


def graph_nodes(tensor, names=None):
    """The graph recorded behind ``tensor``: ``(nodes, edges)``.

    ``nodes`` lists a node for every tensor that takes part (the leaves that require a
    gradient, every intermediate result and ``tensor`` itself) and one for every op; an
    ``edges`` entry ``(i, j)`` says node i feeds node j (a tensor into the op that used it, an
    op into the tensor it made). Inputs that need no gradient (constants, integer ids) are
    not recorded by the engine, so they do not appear. ``names`` maps a label to a tensor
    (``{"w": w}``, or ``dict(model.named_parameters())``) to name those nodes."""
    from scratchlm.autograd import Tensor

    where = "draw_graph"
    if not isinstance(tensor, Tensor):
        raise ArgumentTypeError(f"{where}: expected a scratchlm Tensor, got "
                                f"{type(tensor).__name__}", where=where, name="tensor",
                                value=tensor)
    label_of = {}
    for label, named in (names or {}).items():
        if not isinstance(named, Tensor):
            raise ArgumentTypeError(f"{where}: names[{label!r}] is a {type(named).__name__}; "
                                    "names maps a label to a Tensor", where=where,
                                    name="names", value=names)
        label_of[id(named)] = str(label)

    nodes, index, edges = [], {}, []

    def node(key, kind, label, obj):
        if key not in index:
            index[key] = len(nodes)
            nodes.append(GraphNode(key, kind, label, obj))
        return index[key]

    def tensor_label(t):
        shape = "×".join(map(str, t.shape)) or "scalar"
        name = label_of.get(id(t))
        return f"{name}\n{shape}" if name else shape

    def tensor_node(t):
        return node(("tensor", id(t)), "tensor", tensor_label(t), t)

    tensor_node(tensor)
    stack = [tensor] if tensor._ctx is not None else []
    seen_ops = set()
    while stack:
        t = stack.pop()
        fn = t._ctx
        op = node(("op", id(fn)), "op", type(fn).__name__, fn)
        edges.append((op, tensor_node(t)))
        if id(fn) in seen_ops:
            continue
        seen_ops.add(id(fn))
        if fn._released:
            raise ArgumentError(f"{where}: the graph behind this tensor was freed by "
                                f"backward() (its op {fn.name} no longer holds its inputs); "
                                "draw the graph before calling backward(), or call "
                                "backward(retain_graph=True)", where=where, name="tensor",
                                value=tensor)
        for parent in fn.inputs:
            if parent is None:
                continue
            edges.append((tensor_node(parent), op))
            if parent._ctx is not None:
                stack.append(parent)
    return nodes, sorted(set(edges))


class DotSource(str):
    """Graphviz ``dot`` source (a ``str``); a notebook renders it when Graphviz's ``dot``
    program is installed, and shows the text otherwise."""

    def _repr_svg_(self):
        try:
            import graphviz

            return graphviz.Source(str(self)).pipe(format="svg").decode("utf-8")
        except Exception:  # noqa: BLE001 - no dot program: show the source instead
            return None


def _dot_source(nodes, edges):
    lines = ["digraph scratchlm {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for i, n in enumerate(nodes):
        label = n.label.replace('"', r"\"").replace("\n", r"\n")
        shape = "box" if n.kind == "tensor" else "ellipse"
        fill = ', style=filled, fillcolor="#dbe9f6"' if n.kind == "op" else ""
        lines.append(f'  n{i} [label="{label}", shape={shape}{fill}];')
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    lines.append("}")
    return DotSource("\n".join(lines) + "\n")


def _layers(count, edges):
    """Each node's column: its longest path from a node with no inputs."""
    inputs = [[] for _ in range(count)]
    for a, b in edges:
        inputs[b].append(a)
    depth = [None] * count
    for start in range(count):
        stack = [start]
        while stack:
            n = stack[-1]
            pending = [p for p in inputs[n] if depth[p] is None]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[n] = 1 + max((depth[p] for p in inputs[n]), default=-1)
    return depth, inputs


def draw_graph(tensor, names=None, engine=None):
    """The computation graph recorded behind ``tensor`` (micrograd's ``draw_dot``).

    Tensors are boxes labelled with their shape (and their name from ``names``, a mapping
    label → Tensor); ops are ellipses labelled with their Function's class. Data flows from
    left to right. Call it before ``backward()``, which frees the graph.

    ``engine``: ``"graphviz"`` returns the Graphviz source (:class:`DotSource`, a ``str``
    that a notebook renders when Graphviz is installed), ``"matplotlib"`` a Figure drawn by
    matplotlib; ``None`` (default) picks Graphviz when the ``graphviz`` package is importable.
    """
    where = "draw_graph"
    if engine is None:
        try:
            import graphviz  # noqa: F401
            engine = "graphviz"
        except ImportError:
            engine = "matplotlib"
    if engine not in ("graphviz", "matplotlib"):
        raise ArgumentError(f"{where}: engine={engine!r}; expected 'graphviz', 'matplotlib' "
                            "or None", where=where, name="engine", value=engine)
    nodes, edges = graph_nodes(tensor, names)
    if engine == "graphviz":
        return _dot_source(nodes, edges)

    from matplotlib.collections import LineCollection
    from matplotlib.patches import Ellipse, FancyBboxPatch

    depth, inputs = _layers(len(nodes), edges)
    columns = max(depth) + 1
    y = [0.0] * len(nodes)
    rows = 1
    for column in range(columns):  # order each column by the mean height of its inputs
        members = [i for i in range(len(nodes)) if depth[i] == column]
        members.sort(key=lambda i: (np.mean([y[p] for p in inputs[i]]) if inputs[i] else 0, i))
        for rank, i in enumerate(members):
            y[i] = rank - (len(members) - 1) / 2
        rows = max(rows, len(members))
    x = [1.6 * d for d in depth]
    fig = _figure(max(4.0, 1.5 * columns + 1), max(2.0, 0.9 * rows + 1))
    ax = fig.add_subplot()
    segments = [[(x[a], y[a]), (x[b], y[b])] for a, b in edges]
    ax.add_collection(LineCollection(segments, colors="0.55", linewidths=1.0, zorder=1))
    for a, b in edges:  # an arrowhead near each target: the direction of the data
        tip = (x[a] + 0.55 * (x[b] - x[a]), y[a] + 0.55 * (y[b] - y[a]))
        ax.annotate("", xy=tip, xytext=(x[a], y[a]),
                    arrowprops={"arrowstyle": "-|>", "color": "0.55", "lw": 0.0,
                                "shrinkA": 0, "shrinkB": 0})
    for i, n in enumerate(nodes):
        if n.kind == "op":
            patch = Ellipse((x[i], y[i]), 1.15, 0.55, facecolor="#dbe9f6",
                            edgecolor="#2b6cb0", zorder=2)
        else:
            leaf = n.obj._ctx is None
            patch = FancyBboxPatch((x[i] - 0.55, y[i] - 0.3), 1.1, 0.6,
                                   boxstyle="round,pad=0.02", zorder=2,
                                   facecolor="#fdf2d0" if leaf else "white",
                                   edgecolor="#b7791f" if leaf else "0.3")
        ax.add_patch(patch)
        ax.text(x[i], y[i], n.label, ha="center", va="center", fontsize=7, zorder=3)
    ax.set_xlim(-1.0, x and max(x) + 1.0)
    ax.set_ylim(-rows / 2 - 0.3, rows / 2 + 0.3)
    ax.set_axis_off()
    ax.set_title("computation graph: tensors (boxes, leaves shaded) and ops (ellipses)",
                 fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- attention
def attention_heatmap(weights, queries=None, keys=None, title=None, head_names=None):
    """Attention weights as heatmaps: row i is query i, column j key j, the colour the
    weight (0 to 1). ``weights``: (T_q, T_k) for one head, or (H, T_q, T_k) for H heads, one
    panel each. ``queries`` and ``keys``: the tokens, as tick labels."""
    where = "attention_heatmap"
    array = _host_array(where, "weights", weights, (2, 3))
    if array.ndim == 2:
        array = array[None]
    heads, t_q, t_k = array.shape
    queries = _labels(where, "queries", queries, t_q, "query positions")
    keys = _labels(where, "keys", keys, t_k, "key positions")
    head_names = _labels(where, "head_names", head_names, heads, "heads") or (
        [f"head {h}" for h in range(heads)] if heads > 1 else [""])
    columns = min(heads, 4)
    panel_rows = math.ceil(heads / columns)
    panel = min(0.3 * max(t_q, t_k) + 1.5, 14.0 / columns)
    fig = _figure(panel * columns + 1.2, panel * panel_rows + 0.8)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(panel_rows, columns, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.set_axis_off()
            continue
        image = ax.imshow(array[h], cmap="viridis", vmin=0.0, vmax=max(1e-12, array.max()),
                          aspect="auto" if max(t_q, t_k) > 40 else "equal")
        ax.set_title(head_names[h], fontsize=9)
        if keys is not None:
            ax.set_xticks(range(t_k), keys, rotation=90, fontsize=7)
        if queries is not None:
            ax.set_yticks(range(t_q), queries, fontsize=7)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------- embeddings
def pca_2d(vectors):
    """The rows of ``vectors`` projected on their first two principal components (via the
    SVD of the centred matrix X − mean = U S Vᵀ: the coordinates are U[:, :2] S[:2])."""
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    explained = s[:2] ** 2 / max(float((s**2).sum()), 1e-300)
    if coords.shape[1] < 2:  # one feature: put everything on a line
        coords = np.column_stack([coords, np.zeros(len(coords))])
        explained = np.append(explained, 0.0)
    return coords, explained


def embedding_map(vectors, labels=None, highlight=None, title=None):
    """A 2-D map of embedding vectors: each row of ``vectors`` (N, d) becomes a point, placed
    by PCA (the two directions along which the vectors vary most), labelled with
    ``labels[i]``. ``highlight``: labels to draw in red (e.g. a word and its neighbours)."""
    where = "embedding_map"
    array = _host_array(where, "vectors", vectors, (2,))
    if len(array) < 2:
        raise ArgumentError(f"{where}: vectors has shape {array.shape}; a map needs at least "
                            "2 vectors (rows)", where=where, name="vectors", value=vectors)
    labels = _labels(where, "labels", labels, len(array), "vectors")
    coords, explained = pca_2d(array)
    marked = set(map(str, highlight or ()))
    colours = ["tab:red" if labels and labels[i] in marked else "tab:blue"
               for i in range(len(array))]
    fig = _figure(7, 6)
    ax = fig.add_subplot()
    ax.scatter(coords[:, 0], coords[:, 1], s=14, c=colours, alpha=0.8)
    if labels is not None:
        for (px, py), label, colour in zip(coords, labels, colours):
            ax.annotate(label, (px, py), xytext=(3, 3), textcoords="offset points",
                        fontsize=8, color="black" if colour == "tab:blue" else colour)
    ax.set_xlabel(f"principal component 1 ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"principal component 2 ({explained[1]:.0%} of the variance)")
    ax.set_title(title or f"{len(array)} vectors of dimension {array.shape[1]}, PCA to 2-D")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- beam search
class BeamNode:
    """A hypothesis of a beam search: its token, its parent (index into the previous level,
    -1 for the prompt), its summed log-probability and whether it is on the best path."""

    __slots__ = ("level", "parent", "token", "log_prob", "best")

    def __init__(self, level, parent, token, log_prob):
        self.level, self.parent, self.token, self.log_prob = level, parent, token, log_prob
        self.best = False

    def __repr__(self):
        return (f"BeamNode(level={self.level}, parent={self.parent}, token={self.token}, "
                f"log_prob={self.log_prob:.4f}{', best' if self.best else ''})")


class _Recorder:
    """Wraps a decoder of :func:`scratchlm.generation.batched_beam_search` and keeps the
    tree: each ``advance(rows, new_ids)`` says which hypothesis each new one extends."""

    def __init__(self, decoder):
        self.decoder, self.levels, self.log_probs = decoder, [], None

    def _keep(self, logits):
        logits = backend.to_numpy(logits).astype(np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        self.step_log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return logits

    def start(self):
        logits = self.decoder.start()
        self._keep(logits)
        return logits

    def advance(self, rows, new_ids):
        rows, ids = backend.to_numpy(rows), backend.to_numpy(new_ids)
        previous = self.levels[-1] if self.levels else [BeamNode(-1, -1, None, 0.0)]
        level = [BeamNode(len(self.levels), int(r), int(t),
                          previous[r].log_prob + float(self.step_log_probs[r, t]))
                 for r, t in zip(rows, ids)]
        self.levels.append(level)
        logits = self.decoder.advance(rows, new_ids)
        self._keep(logits)
        return logits


def beam_search_tree(model, prompt, max_new_tokens, beam_width=3):
    """Run :func:`scratchlm.generation.beam_search` on one prompt (a 1-D list of ids) and
    record its tree: a list of levels, level t the ``beam_width`` hypotheses kept after t + 1
    new tokens (:class:`BeamNode`, best first), the best final hypothesis' path marked."""
    from scratchlm import generation
    from scratchlm.errors import check_int

    where = "beam_tree"
    max_new_tokens = check_int(where, "max_new_tokens", max_new_tokens, 1)
    generation.check_beam_width(where, beam_width)
    ids = np.asarray(prompt)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ArgumentError(f"{where}: prompt has shape {ids.shape} and dtype {ids.dtype}; "
                            "expected a non-empty 1-D list of token ids (one prompt)",
                            where=where, name="prompt", value=prompt)
    device = generation._model_device(model)
    ids = generation._as_ids(ids[None], device, where, generation._vocab_size(model))
    recorder = _Recorder(generation._PromptContinuation(model, ids))
    # One step more than drawn: the search hands the decoder each level's choices when it
    # asks for the next level's logits, so the last level drawn is seen at that extra step.
    with generation.decoding_mode(model):
        generation.batched_beam_search(recorder, beam_width, max_new_tokens + 1)
    levels = recorder.levels[:max_new_tokens]
    best = max(range(len(levels[-1])), key=lambda i: levels[-1][i].log_prob)
    for level in reversed(levels):
        level[best].best = True
        best = level[best].parent
    return levels


def beam_tree(model, prompt, max_new_tokens, beam_width=3, decode=None):
    """The tree a beam search explores: column t holds the ``beam_width`` hypotheses kept
    after t new tokens (the prompt at the left), each node its token and summed
    log-probability, each edge the hypothesis it extends. The best final hypothesis' path is
    drawn in red. ``decode``: ids → text, for the labels (default: the ids)."""
    levels = beam_search_tree(model, prompt, max_new_tokens, beam_width)
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle

    decode = decode or (lambda ids: " ".join(map(str, ids)))
    width = max(len(level) for level in levels)
    fig = _figure(2.0 + 1.9 * len(levels), 1.0 + 0.8 * width)
    ax = fig.add_subplot()

    def height(rank, count):
        return (count - 1) / 2 - rank

    plain, best = [], []
    for t, level in enumerate(levels):
        parents = levels[t - 1] if t else [None]
        for rank, n in enumerate(level):
            start = (t, height(n.parent if t else 0, len(parents)))
            end = (t + 1, height(rank, len(level)))
            (best if n.best else plain).append([start, end])
    ax.add_collection(LineCollection(plain, colors="0.6", linewidths=1.0, zorder=1))
    ax.add_collection(LineCollection(best, colors="tab:red", linewidths=2.2, zorder=1))
    ax.add_patch(Circle((0, 0), 0.12, facecolor="0.3", zorder=2))
    ax.text(-0.15, 0, repr(decode([int(i) for i in np.asarray(prompt)])), ha="right",
            va="center", fontsize=8)
    for t, level in enumerate(levels):
        for rank, n in enumerate(level):
            centre = (t + 1, height(rank, len(level)))
            ax.add_patch(Circle(centre, 0.12, zorder=2,
                                facecolor="tab:red" if n.best else "white", edgecolor="0.3"))
            ax.text(centre[0], centre[1] + 0.2, f"{decode([n.token])!r}\n{n.log_prob:.2f}",
                    ha="center", va="bottom", fontsize=7)
    ax.set_xlim(-1.6, len(levels) + 0.6)
    ax.set_ylim(-width / 2 - 0.2, width / 2 + 0.4)
    ax.set_axis_off()
    ax.set_title(f"beam search, beam width {beam_width}: each node a kept hypothesis "
                 "(token, Σ log p); red: the best", fontsize=9)
    return fig


# ------------------------------------------------------------------- learning-rate schedules
def _schedule_values(where, label, schedule, steps):
    from scratchlm.optim.lr_scheduler import LRScheduler, warmup_cosine_lr

    if isinstance(schedule, LRScheduler):
        base = schedule.base_lrs[0]
        return [schedule.lr_at(s, base) for s in range(steps)]
    if _is_train_config(schedule):
        peak = schedule.learning_rate
        return [warmup_cosine_lr(s, peak, schedule.warmup_steps, schedule.max_steps,
                                 schedule.min_lr_ratio * peak) for s in range(steps)]
    if callable(schedule):
        values = [schedule(s) for s in range(steps)]
        for s, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ArgumentTypeError(f"{where}: the schedule {label!r} returned {v!r} at "
                                        f"step {s}; a schedule returns a learning rate (a "
                                        "number) for each step", where=where, name="schedule",
                                        value=schedule)
        return [float(v) for v in values]
    raise ArgumentTypeError(f"{where}: {label!r} is a {type(schedule).__name__}; expected a "
                            "scheduler (scratchlm.optim.WarmupCosine, NoamSchedule ...), a "
                            "TrainConfig or a function step -> learning rate", where=where,
                            name="schedule", value=schedule)


def _is_train_config(value):
    """Whether ``value`` is a :class:`~scratchlm.train.TrainConfig` (recognised by its
    schedule's fields: viz sits below training and does not import it)."""
    return all(hasattr(value, name) for name in ("learning_rate", "warmup_steps", "max_steps",
                                                "min_lr_ratio"))


def lr_schedule(schedule, steps=None, title=None):
    """The learning rate at each update ``0 … steps − 1``.

    ``schedule``: a scheduler (its first group's base rate), a :class:`TrainConfig` (the
    Trainer's warmup and cosine decay; ``steps`` defaults to its ``max_steps``), a function
    step → rate, or a dict label → any of these for several curves, one line each."""
    where = "lr_schedule"
    curves = dict(schedule) if isinstance(schedule, Mapping) else {"": schedule}
    if not curves:
        raise ArgumentError(f"{where}: the dict of schedules is empty", where=where,
                            name="schedule", value=schedule)
    if steps is None:
        lengths = [c.max_steps for c in curves.values() if _is_train_config(c)]
        if not lengths:
            raise ArgumentError(f"{where}: steps=None; give the number of steps to draw "
                                "(only a TrainConfig knows its own)", where=where,
                                name="steps", value=steps)
        steps = max(lengths)
    from scratchlm.errors import check_int

    steps = check_int(where, "steps", steps, 1)
    fig = _figure(7, 3.5)
    ax = fig.add_subplot()
    for label, curve in curves.items():
        ax.plot(range(steps), _schedule_values(where, label, curve, steps), label=label or None)
    ax.set_xlabel("update (step)")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "learning-rate schedule")
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------- gradient norms
_LAYER = re.compile(r"^(.*?\.\d+)\.")


def _layer_of(name):
    """``transformer.h.3.attn.c_attn.weight`` → ``transformer.h.3``; a name with no numbered
    part is its own group."""
    match = _LAYER.match(name)
    return match.group(1) if match else name


def _named_gradients(where, label, source):
    from scratchlm.nn import Module

    if isinstance(source, Module):
        pairs = [(name, p.grad) for name, p in source.named_parameters() if p.grad is not None]
        if not pairs:
            raise ArgumentError(f"{where}: no parameter of {label or 'the model'} has a "
                                "gradient; call loss.backward() first (and draw before "
                                "optimizer.zero_grad())", where=where, name="model",
                                value=source)
        return [(name, np.asarray(backend.to_numpy(g), dtype=np.float64)) for name, g in pairs]
    if isinstance(source, Mapping):
        return [(str(name), _host_array(where, f"gradient {name!r}", g, (0, 1, 2, 3, 4)))
                for name, g in source.items()]
    raise ArgumentTypeError(f"{where}: {label or 'the argument'} is a "
                            f"{type(source).__name__}; expected a Module whose parameters "
                            "have gradients, or a dict name -> gradient array", where=where,
                            name="model", value=source)


def gradient_norms(model, by="parameter", title=None):
    """The L2 norm ‖∂L/∂θ‖ of each parameter's gradient (``by="parameter"``), or of each
    layer's (``by="layer"``: the parameters whose dotted names share the part up to their
    first number, ``transformer.h.3``, pooled as √Σ‖g‖²), on a log scale, in the order of
    ``named_parameters()``. ``model``: a Module after ``backward()``, a dict name → gradient,
    or a dict label → either of these to compare several (one line each, e.g. with and
    without residual connections)."""
    where = "gradient_norms"
    if by not in ("parameter", "layer"):
        raise ArgumentError(f"{where}: by={by!r}; expected 'parameter' or 'layer'",
                            where=where, name="by", value=by)
    from scratchlm.nn import Module

    several = isinstance(model, Mapping) and model and all(
        isinstance(v, (Module, Mapping)) for v in model.values())
    series = dict(model) if several else {"": model}
    fig = _figure(8, 4)
    ax = fig.add_subplot()
    names = None
    for label, source in series.items():
        grouped = {}
        for name, g in _named_gradients(where, label, source):
            key = _layer_of(name) if by == "layer" else name
            grouped[key] = grouped.get(key, 0.0) + float((g**2).sum())
        keys, norms = list(grouped), np.sqrt(list(grouped.values()))
        names = names or keys
        positions = [names.index(k) if k in names else len(names) + i
                     for i, k in enumerate(keys)]
        ax.plot(positions, norms, "o-", ms=4, label=label or None)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel("‖gradient‖₂")
    ax.set_title(title or f"gradient norm per {by}")
    ax.grid(alpha=0.3, which="both")
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- loss curves
def read_history(run_dir):
    """The loss history a :class:`~scratchlm.train.Trainer` saved in ``run_dir``'s
    checkpoint: a dict ``step``, ``train_loss``, ``val_step``, ``val_loss`` of NumPy arrays."""
    from scratchlm import checkpoint
    from scratchlm.runs import CHECKPOINT

    where = "loss_curves"
    if not isinstance(run_dir, (str, os.PathLike)):
        raise ArgumentTypeError(f"{where}: run_dir must be a path, got "
                                f"{type(run_dir).__name__}", where=where, name="run_dir",
                                value=run_dir)
    path = os.path.join(os.fspath(run_dir), CHECKPOINT)
    if not os.path.isfile(path):
        raise RunNotFoundError(f"{where}: no {CHECKPOINT} in {os.fspath(run_dir)!r}; give the "
                               "folder a Trainer saved into (its run_dir)", path=run_dir)
    history = checkpoint.load(path)["history"]
    return {key: np.asarray(history.get(key, []), dtype=np.float64)
            for key in ("step", "train_loss", "val_step", "val_loss")}


def loss_curves(run_dir, smooth=None, title=None):
    """Loss curves of one run folder, or of several (a list, or a dict label → folder): the
    training loss of every step (faint), its running mean over ``smooth`` steps (default
    1/50 of the run) and the validation loss when the run recorded one — three lines a run,
    read from the run's ``checkpoint.npz``."""
    if isinstance(run_dir, Mapping):
        runs = dict(run_dir)
    elif isinstance(run_dir, (list, tuple)):
        runs = {os.path.basename(os.fspath(r).rstrip("/")): r for r in run_dir}
    else:
        runs = {"": run_dir}
    return _loss_figure({label: read_history(folder) for label, folder in runs.items()},
                        smooth, title)


def history_curves(history, smooth=None, title=None):
    """The curves of :func:`loss_curves` from a loss history itself (a Trainer's
    ``history``: lists ``step``, ``train_loss``, ``val_step``, ``val_loss``); the Trainer
    saves this figure as its run's ``loss.png``."""
    history = {key: np.asarray(history.get(key, []), dtype=np.float64)
               for key in ("step", "train_loss", "val_step", "val_loss")}
    return _loss_figure({"": history}, smooth, title)


def _loss_figure(histories, smooth, title):
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    for colour, (label, history) in enumerate(histories.items()):
        steps, train = history["step"], history["train_loss"]
        prefix = f"{label}: " if label else ""
        c = f"C{colour}"
        if len(train):
            window = smooth or max(1, len(train) // 50)
            ax.plot(steps, train, color=c, alpha=0.25, lw=0.8,
                    label=f"{prefix}train (per step)")
            mean = np.convolve(train, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], mean, color=c, label=f"{prefix}train (mean of {window})")
        if len(history["val_loss"]):
            ax.plot(history["val_step"], history["val_loss"], "o--", color=c, ms=4,
                    label=f"{prefix}validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title or "loss curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
