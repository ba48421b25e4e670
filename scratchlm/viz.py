"""Pictures for learners, on matplotlib: the recorded computation graph, attention weights,
embeddings, a beam search's tree, a learning-rate schedule, gradient norms and loss curves.

Every function returns a :class:`matplotlib.figure.Figure` (:func:`draw_graph` returns the
Graphviz source when asked for it). In a notebook, leave the figure as the cell's last value to
show it; in a script, ``fig.savefig("picture.png")``. The figures are made with
:class:`~matplotlib.figure.Figure` itself, not ``pyplot``: nothing here calls ``plt.show()``,
registers a figure with pyplot or changes matplotlib's backend or settings, so the pictures
never appear twice and a notebook's own plots keep working.

Every function takes ``lang="en"`` or ``lang="zh"``: the language of the titles, axis labels
and legends it writes. Chinese text needs a CJK font: :func:`cjk_font` finds an installed one
(Noto Sans CJK, from the ``fonts-noto-cjk`` package on Debian and Ubuntu) and the figures use
it for the glyphs their first font lacks; :func:`font_settings` gives a notebook's own plots
the same fonts. With no CJK font installed they warn once, naming the package.

    from scratchlm import viz
    loss.backward(retain_graph=True)
    viz.draw_graph(loss)                          # every node's value and gradient
    viz.attention_heatmap(weights, tokens, tokens, lang="zh")
    viz.embedding_map(model.transformer.wte.weight, labels)
    viz.loss_curves("runs/shakespeare")
    plt.rcParams.update(viz.font_settings("zh"))  # a notebook's own Chinese plots
"""

import contextlib
import functools
import inspect
import math
import numbers
import os
import re
import warnings
from collections.abc import Mapping

import numpy as np

from scratchlm import backend
from scratchlm.errors import ArgumentError, ArgumentTypeError, RunNotFoundError

__all__ = ["draw_graph", "attention_heatmap", "embedding_map", "beam_tree", "beam_search_tree",
           "lr_schedule", "gradient_norms", "loss_curves", "history_curves", "graph_nodes",
           "graph_gradients", "cjk_font", "font_settings", "LANGUAGES", "CJK_FONT_PACKAGE"]

# ---------------------------------------------------------------- languages and fonts
#: The languages a figure's own text (titles, axis labels, legends) can be written in.
LANGUAGES = ("en", "zh")
#: The Debian/Ubuntu package that installs the CJK font the Chinese figures use.
CJK_FONT_PACKAGE = "fonts-noto-cjk"
#: Installed font families that draw Chinese, best first; any other family whose name says
#: "CJK" comes after them.
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", "SimHei",
                "Heiti SC", "Arial Unicode MS", "Droid Sans Fallback")
#: Font files to register when matplotlib's font list (cached before the font was
#: installed) lacks a CJK family.
_CJK_FILES = re.compile(r"(NotoSansCJK|SourceHanSans|wqy|simhei|msyh|PingFang|DroidSansFallback)",
                        re.IGNORECASE)
_CJK_TEXT = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")

TEXT = {
    "en": {
        "graph title": "computation graph of {root}: boxes are tensors (leaves shaded), "
                       "ellipses ops;\ndata is each value, grad ∂{root}/∂node",
        "graph title, no grad": "computation graph: boxes are tensors (leaves shaded), "
                                "ellipses ops; data is each value",
        "data": "data", "grad": "grad",
        "key": "key", "query": "query", "weight": "weight", "head": "head {h}",
        "component": "principal component {n} ({share:.0%} of the variance)",
        "map title": "{count} vectors of dimension {dim}, PCA to 2-D",
        "beam title": "beam search, beam width {width}: each node a kept hypothesis "
                      "(token, Σ log p); red: the best",
        "update": "update (step)", "learning rate": "learning rate",
        "schedule title": "learning-rate schedule",
        "gradient norm": "‖gradient‖₂",
        "layer index": "layer ({prefix}N)",
        "norms title": {"parameter": "gradient norm per parameter",
                        "layer": "gradient norm per layer"},
        "train per step": "{prefix}train (per step)",
        "train mean": "{prefix}train (mean of {window})",
        "validation": "{prefix}validation",
        "step": "step", "cross-entropy": "cross-entropy (nats/token)",
        "loss title": "loss curves",
    },
    "zh": {
        "graph title": "{root} 的计算图：方框是张量（叶子节点加底色），椭圆是运算；\n"
                       "值是每个节点的数值，梯度是 ∂{root}/∂节点",
        "graph title, no grad": "计算图：方框是张量（叶子节点加底色），椭圆是运算；"
                                "值是每个节点的数值",
        "data": "值", "grad": "梯度",
        "key": "键", "query": "查询", "weight": "权重", "head": "头 {h}",
        "component": "第 {n} 主成分（占方差的 {share:.0%}）",
        "map title": "{count} 个 {dim} 维向量，用 PCA 降到二维",
        "beam title": "束搜索，束宽 {width}：每个节点是保留下来的一个假设（词元，Σ log p）；"
                      "红色：最优",
        "update": "更新步数", "learning rate": "学习率",
        "schedule title": "学习率调度",
        "gradient norm": "‖梯度‖₂",
        "layer index": "层（{prefix}N）",
        "norms title": {"parameter": "每个参数的梯度范数", "layer": "每层的梯度范数"},
        "train per step": "{prefix}训练（每步）",
        "train mean": "{prefix}训练（{window} 步滑动平均）",
        "validation": "{prefix}验证",
        "step": "步", "cross-entropy": "交叉熵（奈特/词元）",
        "loss title": "损失曲线",
    },
}

_cjk = []  # the CJK family found by cjk_font(), once looked up ("" for none)
_warned = []  # cjk_font() warned that no CJK font is installed


def _check_lang(where, lang):
    if lang not in LANGUAGES:
        raise ArgumentError(f"{where}: lang={lang!r}; expected one of {', '.join(LANGUAGES)}",
                            where=where, name="lang", value=lang)
    return TEXT[lang]


def cjk_font(warn=True):
    """The name of an installed font family that draws Chinese (Noto Sans CJK SC first), or
    ``None`` — then, with ``warn``, a warning (once per process) that names the package to
    install. Registers the font's file with matplotlib's font list when that list was cached
    before the font was installed."""
    if not _cjk:
        from matplotlib import font_manager

        def installed():
            names = {font.name for font in font_manager.fontManager.ttflist}
            return next((name for name in CJK_FAMILIES if name in names), None) or next(
                (name for name in sorted(names) if "CJK" in name and "Mono" not in name), None)

        found = installed()
        if found is None:
            for path in font_manager.findSystemFonts():
                if _CJK_FILES.search(os.path.basename(path)):
                    with contextlib.suppress(Exception):  # an unreadable file: skip it
                        font_manager.fontManager.addfont(path)
            found = installed()
        _cjk.append(found or "")
    if not _cjk[0] and warn and not _warned:
        _warned.append(True)
        warnings.warn("scratchlm.viz: no CJK font is installed, so Chinese text draws as empty "
                      f"boxes; install one (Debian/Ubuntu: apt-get install {CJK_FONT_PACKAGE}) "
                      "and restart Python", stacklevel=3)
    return _cjk[0] or None


def font_settings(lang="zh"):
    """matplotlib settings (a dict for ``plt.rcParams.update`` or ``plt.rc_context``) under
    which a notebook's own plots draw text in ``lang``: for ``"zh"``, matplotlib's font
    first and the CJK font (:func:`cjk_font`) for the glyphs it lacks; for ``"en"``, none."""
    _check_lang("font_settings", lang)
    if lang == "en":
        return {}
    import matplotlib

    family = [f for f in matplotlib.rcParams["font.family"] if f not in CJK_FAMILIES]
    font = cjk_font()
    return {"font.family": family + [font]} if font else {}


@contextlib.contextmanager
def _fonts(lang):
    """Build a figure with the CJK font behind matplotlib's own (every text made inside
    keeps it), warning once if Chinese is asked for and no such font is installed."""
    import matplotlib

    font = cjk_font(warn=lang == "zh")
    settings = {"font.family": [*matplotlib.rcParams["font.family"], font]} if font else {}
    with matplotlib.rc_context(settings):
        yield settings


def _warn_if_chinese_without_font(fig):
    """Warn (once) when text in ``fig`` is Chinese and no CJK font can draw it."""
    if cjk_font(warn=False) is None and any(_CJK_TEXT.search(t.get_text())
                                            for t in fig.findobj(_text_class())):
        cjk_font(warn=True)


def _text_class():
    from matplotlib.text import Text

    return Text

_figure_class = []


def _figure(width, height):
    """A Figure with an Agg canvas of its own: drawn and saved without pyplot, in the fonts
    it was built with (:func:`_in_language`). It shows itself in a notebook (``_repr_png_``)
    even where pyplot was never imported."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not _figure_class:

        class NotebookFigure(Figure):
            """A matplotlib Figure that IPython displays as a PNG, drawn under the font
            settings it was built with (tick labels are made when drawn)."""

            font_settings = {}

            def draw(self, renderer):
                with matplotlib.rc_context(self.font_settings):
                    super().draw(renderer)

            def _repr_png_(self):
                import io

                buffer = io.BytesIO()
                self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
                return buffer.getvalue()

        _figure_class.append(NotebookFigure)
    fig = _figure_class[0](figsize=(min(width, 40.0), min(height, 30.0)))
    FigureCanvasAgg(fig)
    return fig


def _in_language(function):
    """Run a drawing function (whose ``lang`` argument names the language of its text) with
    the fonts that language needs, and keep them on the figure for when it is drawn."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def drawn(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        lang = bound.arguments["lang"]
        _check_lang(function.__name__, lang)
        with _fonts(lang) as settings:
            result = function(*args, **kwargs)
        if hasattr(result, "font_settings"):
            result.font_settings = settings
            _warn_if_chinese_without_font(result)
        return result

    return drawn


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
    (``{"w": w}``, or ``dict(model.named_parameters())``); a tensor node's label is its name,
    or its shape when it has none."""
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

    def tensor_node(t):
        label = label_of.get(id(t)) or "×".join(map(str, t.shape)) or "scalar"
        return node(("tensor", id(t)), "tensor", label, t)

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
                                "call backward(retain_graph=True) to draw it afterwards, or "
                                "draw it before backward()", where=where, name="tensor",
                                value=tensor)
        for parent in fn.inputs:
            if parent is None:
                continue
            edges.append((tensor_node(parent), op))
            if parent._ctx is not None:
                stack.append(parent)
    return nodes, sorted(set(edges))


def graph_gradients(root):
    """∂root/∂t for every tensor t recorded behind the scalar ``root``, keyed by ``id(t)``:
    the engine's backward pass run once more over the graph (its topological order, each
    op's own ``backward``, broadcasting summed back), keeping every tensor's gradient where
    the engine adds only the leaves' into ``.grad``. The graph must still be there: before
    ``backward()`` or after ``backward(retain_graph=True)``. For a leaf used by one
    ``backward()`` this equals its ``.grad``."""
    from scratchlm.autograd.engine import call_backward, key, sum_to_shape, topological_order

    xp = backend.get_array_module(root.data)
    grads, tensors = {key(root): xp.ones_like(root.data)}, {key(root): root}
    for fn in reversed(topological_order(root)):
        grad_outputs = [grads.get((fn, i)) for i in range(len(fn.output_meta))]
        if all(g is None for g in grad_outputs):  # nothing after this op reached root
            continue
        for x, g in zip(fn.inputs, call_backward(fn, grad_outputs)):
            if x is not None and g is not None:
                g = sum_to_shape(g, x.shape, fn.name)
                tensors[key(x)] = x
                grads[key(x)] = grads[key(x)] + g if key(x) in grads else g
    return {id(tensors[k]): g for k, g in grads.items()}


class DotSource(str):
    """Graphviz ``dot`` source (a ``str``); a notebook renders it when Graphviz's ``dot``
    program is installed, and shows the text otherwise."""

    def _repr_svg_(self):
        try:
            import graphviz

            return graphviz.Source(str(self)).pipe(format="svg").decode("utf-8")
        except Exception:  # noqa: BLE001 - no dot program: show the source instead
            return None


def _dot_source(nodes, edges, labels):
    lines = ["digraph scratchlm {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for i, n in enumerate(nodes):
        label = labels[i].replace('"', r"\"").replace("\n", r"\n")
        shape = "box" if n.kind == "tensor" else "ellipse"
        fill = ', style=filled, fillcolor="#dbe9f6"' if n.kind == "op" else ""
        lines.append(f'  n{i} [label="{label}", shape={shape}{fill}];')
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    lines.append("}")
    return DotSource("\n".join(lines) + "\n")


def _columns(count, edges):
    """Each node's column: one right of its furthest input (so data flows left to right);
    a node with no inputs (a leaf) sits one column left of its first consumer, so that
    every edge into an op spans one column and crosses no other node."""
    inputs = [[] for _ in range(count)]
    consumers = [[] for _ in range(count)]
    for a, b in edges:
        inputs[b].append(a)
        consumers[a].append(b)
    column = [None] * count
    for start in range(count):
        stack = [start]
        while stack:
            n = stack[-1]
            pending = [p for p in inputs[n] if column[p] is None]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            column[n] = 1 + max((column[p] for p in inputs[n]), default=-1)
    for n in range(count):
        if not inputs[n] and consumers[n]:
            column[n] = min(column[c] for c in consumers[n]) - 1
    return column, inputs


def _numbers(array):
    """A short text for an array: its values when it has at most 4, else its shape and norm."""
    values = np.asarray(backend.to_numpy(array), dtype=np.float64)
    if values.size == 1:
        return f"{values.item():.4g}"
    if values.size <= 4:
        return "[" + ", ".join(f"{v:.3g}" for v in values.ravel()) + "]"
    return f"{'×'.join(map(str, values.shape))}, ‖·‖ {np.linalg.norm(values):.3g}"


def _graph_labels(nodes, grads, text):
    labels = []
    for n in nodes:
        if n.kind == "op":
            labels.append(n.label)
            continue
        lines = [n.label] if not n.label[0].isdigit() and n.label != "scalar" else []
        lines.append(f"{text['data']} {_numbers(n.obj.data)}")
        if grads is not None and id(n.obj) in grads:
            lines.append(f"{text['grad']} {_numbers(grads[id(n.obj)])}")
        labels.append("\n".join(lines))
    return labels


def _boundary(centre, half_width, half_height, towards, oval):
    """Where the line from ``centre`` to ``towards`` leaves a box (or an ellipse, ``oval``)
    of that half-width and half-height."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    if oval:
        scale = 1.0 / max(math.hypot(dx / half_width, dy / half_height), 1e-12)
    else:
        scale = min(half_width / max(abs(dx), 1e-12), half_height / max(abs(dy), 1e-12))
    return centre[0] + scale * dx, centre[1] + scale * dy


@_in_language
def draw_graph(tensor, names=None, engine="matplotlib", lang="en", name=None):
    """The computation graph recorded behind ``tensor`` (micrograd's ``draw_dot``).

    Tensors are boxes (leaves shaded), labelled with their name from ``names`` (a mapping
    label → Tensor), their value (``data``: the numbers when there are at most 4, else the
    shape and norm) and, when ``tensor`` is a scalar, their gradient ``grad`` = ∂tensor/∂node
    (:func:`graph_gradients`). Ops are ellipses labelled with their Function's class. Data
    flows from left to right, each edge an arrow into the op or tensor it feeds. Draw after
    ``tensor.backward(retain_graph=True)`` (or before backward: the gradients drawn are
    computed from the graph either way; a plain ``backward()`` frees it). ``name``: what to
    call ``tensor`` in the title (default its name in ``names``, or "out").

    ``engine``: ``"matplotlib"`` (default) a Figure; ``"graphviz"`` the Graphviz source
    (:class:`DotSource`, a ``str`` that a notebook renders when Graphviz is installed).
    """
    where = "draw_graph"
    text = TEXT[lang]
    if engine not in ("graphviz", "matplotlib"):
        raise ArgumentError(f"{where}: engine={engine!r}; expected 'graphviz' or 'matplotlib'",
                            where=where, name="engine", value=engine)
    nodes, edges = graph_nodes(tensor, names)
    grads = graph_gradients(tensor) if tensor.data.size == 1 else None
    labels = _graph_labels(nodes, grads, text)
    if engine == "graphviz":
        return _dot_source(nodes, edges, labels)

    from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch

    column, inputs = _columns(len(nodes), edges)
    columns = max(column) + 1
    y = [0.0] * len(nodes)
    rows = 1
    for c in range(columns):  # order each column by the mean height of its consumers' inputs
        members = [i for i in range(len(nodes)) if column[i] == c]
        members.sort(key=lambda i: (np.mean([y[p] for p in inputs[i]]) if inputs[i] else 0, i))
        for rank, i in enumerate(members):
            y[i] = (len(members) - 1) / 2 - rank
        rows = max(rows, len(members))
    lines = max(label.count("\n") + 1 for label in labels)
    widest = max(max(len(line) for line in label.split("\n")) for label in labels)
    half_width = max(0.55, 0.045 * widest)
    half_height = max(0.3, 0.13 * lines)
    step_x, step_y = 2 * half_width + 0.9, 2 * half_height + 0.35
    x = [step_x * c for c in column]
    y = [step_y * v for v in y]
    fig = _figure(max(4.0, 0.9 * step_x * columns + 0.5), max(2.0, 0.9 * step_y * rows + 1.2))
    ax = fig.add_subplot()
    for i, n in enumerate(nodes):
        if n.kind == "op":
            patch = Ellipse((x[i], y[i]), 1.2, 0.6, facecolor="#dbe9f6", edgecolor="#2b6cb0",
                            zorder=2)
        else:
            leaf = n.obj._ctx is None
            patch = FancyBboxPatch((x[i] - half_width, y[i] - half_height), 2 * half_width,
                                   2 * half_height, boxstyle="round,pad=0.02", zorder=2,
                                   facecolor="#fdf2d0" if leaf else "white",
                                   edgecolor="#b7791f" if leaf else "0.3")
        patch.set_gid(f"node {i}")
        ax.add_patch(patch)
        ax.text(x[i], y[i], labels[i], ha="center", va="center", fontsize=7, zorder=3)

    def edge_of(i, towards):
        oval = nodes[i].kind == "op"
        return _boundary((x[i], y[i]), 0.6 if oval else half_width + 0.02,
                         0.3 if oval else half_height + 0.02, towards, oval)

    for a, b in edges:
        start, end = edge_of(a, (x[b], y[b])), edge_of(b, (x[a], y[a]))
        arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10,
                                color="0.45", lw=1.0, shrinkA=0, shrinkB=0, zorder=1)
        arrow.set_gid(f"edge {a} {b}")
        ax.add_patch(arrow)
    ax.set_xlim(-half_width - 0.3, max(x) + half_width + 0.3)
    ax.set_ylim(min(y) - half_height - 0.3, max(y) + half_height + 0.3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if name is None:
        name = next((label for label, t in (names or {}).items() if t is tensor), "out")
    ax.set_title(text["graph title"].format(root=name) if grads is not None
                 else text["graph title, no grad"], fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- attention
@_in_language
def attention_heatmap(weights, queries=None, keys=None, title=None, head_names=None,
                      lang="en"):
    """Attention weights as heatmaps: row i is query i, column j key j, the colour the
    weight (0 to 1). ``weights``: (T_q, T_k) for one head, or (H, T_q, T_k) for H heads, one
    panel each. ``queries`` and ``keys``: the tokens, as tick labels. ``lang``: the language
    of the axis labels ("en" or "zh")."""
    where = "attention_heatmap"
    text = TEXT[lang]
    array = _host_array(where, "weights", weights, (2, 3))
    if array.ndim == 2:
        array = array[None]
    heads, t_q, t_k = array.shape
    queries = _labels(where, "queries", queries, t_q, "query positions")
    keys = _labels(where, "keys", keys, t_k, "key positions")
    head_names = _labels(where, "head_names", head_names, heads, "heads") or (
        [text["head"].format(h=h) for h in range(heads)] if heads > 1 else [""])
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
        ax.set_xlabel(text["key"])
        ax.set_ylabel(text["query"])
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=text["weight"])
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


@_in_language
def embedding_map(vectors, labels=None, highlight=None, title=None, lang="en"):
    """A 2-D map of embedding vectors: each row of ``vectors`` (N, d) becomes a point, placed
    by PCA (the two directions along which the vectors vary most), labelled with
    ``labels[i]``. ``highlight``: labels to draw in red (e.g. a word and its neighbours).
    ``lang``: the language of the axis labels and title ("en" or "zh")."""
    where = "embedding_map"
    text = TEXT[lang]
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
    ax.set_xlabel(text["component"].format(n=1, share=explained[0]))
    ax.set_ylabel(text["component"].format(n=2, share=explained[1]))
    ax.set_title(title or text["map title"].format(count=len(array), dim=array.shape[1]))
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
    from scratchlm.checks import check_int

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


@_in_language
def beam_tree(model, prompt, max_new_tokens, beam_width=3, decode=None, lang="en"):
    """The tree a beam search explores: column t holds the ``beam_width`` hypotheses kept
    after t new tokens (the prompt at the left), each node its token and summed
    log-probability, each edge the hypothesis it extends. The best final hypothesis' path is
    drawn in red. ``decode``: ids → text, for the labels (default: the ids). ``lang``: the
    language of the title ("en" or "zh")."""
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
    ax.set_title(TEXT[lang]["beam title"].format(width=beam_width), fontsize=9)
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


@_in_language
def lr_schedule(schedule, steps=None, title=None, lang="en"):
    """The learning rate at each update ``0 … steps − 1``.

    ``schedule``: a scheduler (its first group's base rate), a :class:`TrainConfig` (the
    Trainer's warmup and cosine decay; ``steps`` defaults to its ``max_steps``), a function
    step → rate, or a dict label → any of these for several curves, one line each.
    ``lang``: the language of the axis labels and title ("en" or "zh")."""
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
    from scratchlm.checks import check_int

    steps = check_int(where, "steps", steps, 1)
    fig = _figure(7, 3.5)
    ax = fig.add_subplot()
    for label, curve in curves.items():
        ax.plot(range(steps), _schedule_values(where, label, curve, steps), label=label or None)
    ax.set_xlabel(TEXT[lang]["update"])
    ax.set_ylabel(TEXT[lang]["learning rate"])
    ax.set_title(title or TEXT[lang]["schedule title"])
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------- gradient norms
_LAYER = re.compile(r"^(.*?\.\d+)\.")
_NUMBERED = re.compile(r"^(.*\.)(\d+)$")


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


@_in_language
def gradient_norms(model, by="parameter", title=None, lang="en"):
    """The L2 norm ‖∂L/∂θ‖ of each parameter's gradient (``by="parameter"``), or of each
    layer's (``by="layer"``: the parameters whose dotted names share the part up to their
    first number, ``transformer.h.3``, pooled as √Σ‖g‖²), on a log scale, in the order of
    ``named_parameters()``. ``model``: a Module after ``backward()``, a dict name → gradient,
    or a dict label → either of these to compare several (one line each, e.g. with and
    without residual connections). ``lang``: the language of the axis label and title ("en"
    or "zh")."""
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
    numbered = [_NUMBERED.match(name) for name in names]
    if by == "layer" and all(numbered) and len({m.group(1) for m in numbered}) == 1:
        # layers.0, layers.1, ...: the numbers as ticks, the shared prefix said once
        ax.set_xticks(range(len(names)), [m.group(2) for m in numbered], fontsize=8)
        ax.set_xlabel(TEXT[lang]["layer index"].format(prefix=numbered[0].group(1)))
    else:
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel(TEXT[lang]["gradient norm"])
    ax.set_title(title or TEXT[lang]["norms title"][by])
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


@_in_language
def loss_curves(run_dir, smooth=None, title=None, lang="en"):
    """Loss curves of one run folder, or of several (a list, or a dict label → folder): the
    training loss of every step (faint), its running mean over ``smooth`` steps (default
    1/50 of the run) and the validation loss when the run recorded one — three lines a run,
    read from the run's ``checkpoint.npz``. ``lang``: the language of the labels ("en" or
    "zh")."""
    if isinstance(run_dir, Mapping):
        runs = dict(run_dir)
    elif isinstance(run_dir, (list, tuple)):
        runs = {os.path.basename(os.fspath(r).rstrip("/")): r for r in run_dir}
    else:
        runs = {"": run_dir}
    return _loss_figure({label: read_history(folder) for label, folder in runs.items()},
                        smooth, title, lang)


@_in_language
def history_curves(history, smooth=None, title=None, lang="en"):
    """The curves of :func:`loss_curves` from a loss history itself (a Trainer's
    ``history``: lists ``step``, ``train_loss``, ``val_step``, ``val_loss``); the Trainer
    saves this figure as its run's ``loss.png``."""
    history = {key: np.asarray(history.get(key, []), dtype=np.float64)
               for key in ("step", "train_loss", "val_step", "val_loss")}
    return _loss_figure({"": history}, smooth, title, lang)


def _loss_figure(histories, smooth, title, lang):
    text = TEXT[lang]
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    for colour, (label, history) in enumerate(histories.items()):
        steps, train = history["step"], history["train_loss"]
        prefix = f"{label}: " if label else ""
        c = f"C{colour}"
        if len(train):
            window = smooth or max(1, len(train) // 50)
            ax.plot(steps, train, color=c, alpha=0.25, lw=0.8,
                    label=text["train per step"].format(prefix=prefix))
            mean = np.convolve(train, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], mean, color=c,
                    label=text["train mean"].format(prefix=prefix, window=window))
        if len(history["val_loss"]):
            ax.plot(history["val_step"], history["val_loss"], "o--", color=c, ms=4,
                    label=text["validation"].format(prefix=prefix))
    ax.set_xlabel(text["step"])
    ax.set_ylabel(text["cross-entropy"])
    ax.set_title(title or text["loss title"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
