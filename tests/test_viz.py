"""scratchlm.viz draws what it is given: the right number of nodes, cells, points and lines,
at the values computed here independently (our own graph walk, PCA by eigendecomposition,
the schedule's formula, brute-force beam scores); it returns Figures without pyplot, and
training never switches matplotlib's backend."""

import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

import scratchlm as sl
from scratchlm import nn, optim, viz
from scratchlm.errors import ArgumentError, RunNotFoundError
from scratchlm.generation import beam_search
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer
from scratchlm.train import TrainConfig, Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(0)


def walk(root):
    """Tensors and ops behind ``root`` and the number of distinct edges, found here by a
    recursive walk of ``_ctx`` and ``inputs`` (viz uses an explicit stack)."""
    tensors, ops, edges = {id(root)}, set(), set()

    def visit(t):
        fn = t._ctx
        if fn is None:
            return
        edges.add((id(fn), id(t)))
        if id(fn) in ops:
            return
        ops.add(id(fn))
        for parent in fn.inputs:
            if parent is not None:
                tensors.add(id(parent))
                edges.add((id(parent), id(fn)))
                visit(parent)

    visit(root)
    return len(tensors), len(ops), len(edges)


def one_axes(fig):
    assert isinstance(fig, Figure)
    return fig.axes[0]


def tiny_gpt(vocab_size=5, seed=0, **sizes):
    sl.manual_seed(seed)
    shape = dict(block_size=8, n_layer=2, n_head=2, n_embd=8) | sizes
    return GPT(GPTConfig(vocab_size=vocab_size, **shape))


# ------------------------------------------------------------------------------ draw_graph
def graph_cases():
    w = sl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    x = sl.tensor(rng.standard_normal(3), requires_grad=True)
    shared = (w * x).tanh()  # used twice below: one node, two outgoing edges
    yield "diamond", (shared.sum() + (shared * w).sum() / 2.0), {"w": w, "x": x}
    model = tiny_gpt(n_layer=1, n_head=1)
    ids = np.array([[1, 2, 3]])
    yield "gpt", model(ids, ids)[1], dict(model.named_parameters())
    yield "leaf", w, None


def nodes_and_arrows(ax):
    """The node patches (gid "node i") and the edge arrows (gid "edge a b") draw_graph drew."""
    nodes = {int(p.get_gid().split()[1]): p for p in ax.patches if p.get_gid().startswith("node")}
    arrows = {tuple(map(int, p.get_gid().split()[1:])): p for p in ax.patches
              if p.get_gid().startswith("edge")}
    return nodes, arrows


@pytest.mark.parametrize("case", list(graph_cases()), ids=lambda case: case[0])
def test_draw_graph_draws_every_tensor_op_and_edge(case):
    _, root, names = case
    tensors, ops, edges = walk(root)
    nodes, arrows = nodes_and_arrows(one_axes(viz.draw_graph(root, names=names)))
    assert len(nodes) == tensors + ops
    assert len(arrows) == edges
    source = viz.draw_graph(root, names=names, engine="graphviz")
    assert isinstance(source, str) and source.startswith("digraph")
    assert source.count("shape=box") == tensors and source.count("shape=ellipse") == ops
    assert source.count("->") == edges


def test_each_edge_enters_the_node_it_feeds_and_crosses_no_other():
    """z = tanh(w·x + b): b's arrow ends on the Add ellipse (before, it entered the w·x box
    drawn between them); every arrow starts on its source's outline, ends on its target's,
    and passes through no third node."""
    w, x, b = (sl.tensor(v, requires_grad=True) for v in (0.7, -1.3, 0.2))
    z = (w * x + b).tanh()
    z.backward(retain_graph=True)
    graph, edge_list = viz.graph_nodes(z, {"b": b})
    fig = viz.draw_graph(z, names={"b": b})
    fig.canvas.draw()
    nodes, arrows = nodes_and_arrows(one_axes(fig))
    assert set(arrows) == set(edge_list)
    b_node = next(i for i, n in enumerate(graph) if n.obj is b)
    [(_, target)] = [e for e in edge_list if e[0] == b_node]
    assert graph[target].label == "Add"
    transform = one_axes(fig).transData
    for (source, target), arrow in arrows.items():
        start, end = arrow._posA_posB
        for point, owner in ((start, source), (end, target)):
            grown = nodes[owner].get_path().transformed(nodes[owner].get_patch_transform())
            assert grown.contains_point(point, radius=0.1), (source, target)
            assert not grown.contains_point(point, radius=-0.1), "the arrow is inside the node"
        for t in np.linspace(0.05, 0.95, 19):
            point = (1 - t) * np.asarray(start) + t * np.asarray(end)
            for i, patch in nodes.items():
                if i not in (source, target):
                    assert not patch.contains_point(transform.transform(point)), (
                        f"edge {source}->{target} crosses node {i}")


def test_draw_graph_labels_each_node_with_its_value_and_gradient():
    """After backward, each tensor node shows its value and ∂z/∂node, against the chain rule
    by hand: ∂z/∂u = 1 − z² for u = w·x + b and for b, (1 − z²)·x for w, (1 − z²)·w for x."""
    w, x, b = (sl.tensor(v, requires_grad=True) for v in (0.7, -1.3, 0.2))
    product = w * x
    u = product + b
    z = u.tanh()
    z.backward(retain_graph=True)
    local = 1 - math.tanh(0.7 * -1.3 + 0.2) ** 2
    expected = {id(w): local * -1.3, id(x): local * 0.7, id(b): local, id(product): local,
                id(u): local, id(z): 1.0}
    grads = viz.graph_gradients(z)
    for key, value in expected.items():
        assert math.isclose(float(grads[key]), value, rel_tol=1e-6)
    assert math.isclose(float(grads[id(w)]), float(w.grad), rel_tol=1e-6)
    texts = [t.get_text() for t in one_axes(viz.draw_graph(z, {"w": w, "x": x, "b": b})).texts]
    assert f"w\ndata 0.7\ngrad {local * -1.3:.4g}" in texts
    assert f"data {0.7 * -1.3 + 0.2:.4g}\ngrad {local:.4g}" in texts  # u, unnamed
    assert {"Mul", "Add", "Tanh"} <= set(texts)
    assert not any("scalar" in t for t in texts)
    zh = [t.get_text() for t in one_axes(viz.draw_graph(z, {"w": w}, lang="zh")).texts]
    assert f"w\n值 0.7\n梯度 {local * -1.3:.4g}" in zh


def test_graph_gradients_match_the_engine_on_a_shared_broadcast_graph():
    w = sl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    x = sl.tensor(rng.standard_normal(3), requires_grad=True)
    shared = (w * x).tanh()
    root = shared.sum() + (shared * w).sum() / 2.0
    root.backward(retain_graph=True)
    grads = viz.graph_gradients(root)
    np.testing.assert_allclose(grads[id(w)], w.grad, rtol=1e-6)
    np.testing.assert_allclose(grads[id(x)], x.grad, rtol=1e-6)
    # ∂root/∂shared = 1 + w/2, by hand
    np.testing.assert_allclose(grads[id(shared)], 1 + w.data / 2, rtol=1e-6)


def test_draw_graph_labels_named_tensors_and_op_classes():
    w = sl.tensor(np.ones((2, 3)), requires_grad=True)
    y = (w * w).exp().sum()
    texts = [t.get_text() for t in one_axes(viz.draw_graph(y, {"weight": w})).texts]
    norm = np.linalg.norm(2 * np.e * np.ones((2, 3)))  # ∂Σ exp(w²)/∂w = 2w exp(w²)
    assert f"weight\ndata 2×3, ‖·‖ {np.sqrt(6):.3g}\ngrad 2×3, ‖·‖ {norm:.3g}" in texts
    assert {"Mul", "Exp", "Sum"} <= set(texts)


def test_draw_graph_refuses_a_freed_graph_and_non_tensors():
    w = sl.tensor(np.ones(3), requires_grad=True)
    y = (w * 2.0).sum()
    y.backward()
    with pytest.raises(ArgumentError, match=r"draw_graph: .*backward\(retain_graph=True\)"):
        viz.draw_graph(y)
    with pytest.raises(TypeError, match="draw_graph: expected a scratchlm Tensor, got ndarray"):
        viz.draw_graph(np.ones(3))
    with pytest.raises(ArgumentError, match="engine='dot'"):
        viz.draw_graph(w, engine="dot")
    with pytest.raises(ArgumentError, match="draw_graph: lang='fr'; expected one of en, zh"):
        viz.draw_graph(w, lang="fr")


# ------------------------------------------------------------------------ attention_heatmap
def test_attention_heatmap_one_panel_per_head_one_cell_per_weight():
    scores = rng.standard_normal((3, 4, 5))
    weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    fig = viz.attention_heatmap(sl.tensor(weights), list("abcd"), list("vwxyz"))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3
    for h, ax in enumerate(panels):
        np.testing.assert_allclose(ax.images[0].get_array(), weights[h])
        assert [t.get_text() for t in ax.get_xticklabels()] == list("vwxyz")
        assert [t.get_text() for t in ax.get_yticklabels()] == list("abcd")
    single = viz.attention_heatmap(weights[0])
    assert [ax.images[0].get_array().shape for ax in single.axes if ax.images] == [(4, 5)]


def test_attention_heatmap_errors_name_the_function_and_shapes():
    with pytest.raises(ArgumentError, match=r"attention_heatmap: weights has shape \(5,\); "
                                            "expected a 2-D or 3-D array"):
        viz.attention_heatmap(np.ones(5))
    with pytest.raises(ArgumentError, match="attention_heatmap: 2 keys for 5 key positions"):
        viz.attention_heatmap(np.ones((4, 5)), keys=["a", "b"])


# ---------------------------------------------------------------------------- embedding_map
def test_embedding_map_places_each_vector_at_its_principal_components():
    vectors = rng.standard_normal((12, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1])
    labels = [f"w{i}" for i in range(12)]
    ax = one_axes(viz.embedding_map(vectors, labels, highlight=["w3"]))
    [points] = [c for c in ax.collections if isinstance(c, PathCollection)]
    offsets = np.asarray(points.get_offsets())
    # independently: eigenvectors of the covariance matrix, largest eigenvalues first
    centred = vectors - vectors.mean(0)
    values, vectors_ = np.linalg.eigh(centred.T @ centred)
    expected = centred @ vectors_[:, np.argsort(values)[::-1][:2]]
    assert offsets.shape == (12, 2)
    for k in range(2):  # each component is defined up to its sign
        sign = np.sign(offsets[:, k] @ expected[:, k])
        np.testing.assert_allclose(offsets[:, k], sign * expected[:, k], atol=1e-9)
    assert [t.get_text() for t in ax.texts] == labels
    assert "w3" in [t.get_text() for t in ax.texts if t.get_color() == "tab:red"]


def test_embedding_map_errors():
    with pytest.raises(ArgumentError, match="embedding_map: 2 labels for 3 vectors"):
        viz.embedding_map(np.ones((3, 4)), ["a", "b"])
    with pytest.raises(ArgumentError, match=r"embedding_map: vectors has shape \(2, 3, 4\)"):
        viz.embedding_map(np.ones((2, 3, 4)))


# -------------------------------------------------------------------------------- beam_tree
def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_beam_tree_scores_every_hypothesis_like_brute_force():
    model = tiny_gpt(vocab_size=3)
    prompt = [1, 2]
    levels = viz.beam_search_tree(model, prompt, 2, beam_width=9)  # 9 = 3²: nothing pruned
    assert [len(level) for level in levels] == [3, 9]
    model.eval()
    for node in levels[1]:
        first = levels[0][node.parent].token
        with sl.no_grad():
            logits = model(np.array([prompt + [first]]))[0].numpy()[0]
        brute = log_softmax(logits[-2])[first] + log_softmax(logits[-1])[node.token]
        assert math.isclose(node.log_prob, brute, rel_tol=1e-5)
    assert len({(levels[0][n.parent].token, n.token) for n in levels[1]}) == 9


def test_beam_tree_draws_each_kept_hypothesis_and_the_best_path():
    model = tiny_gpt(vocab_size=6, seed=3)
    prompt, steps, width = [1, 2, 3], 4, 2
    ax = one_axes(viz.beam_tree(model, prompt, steps, beam_width=width))
    assert len(ax.patches) == 1 + width * steps  # the prompt and every kept hypothesis
    plain, red = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(red.get_segments()) == steps
    assert len(plain.get_segments()) + steps == width * steps
    levels = viz.beam_search_tree(model, prompt, steps, beam_width=width)
    path = [next(n.token for n in level if n.best) for level in levels]
    ids, _ = beam_search(model, np.array([prompt]), steps, beam_width=width)
    assert path == list(ids[0, len(prompt):])


def test_beam_tree_errors():
    model = tiny_gpt()
    with pytest.raises(ArgumentError, match="beam_tree: prompt has shape"):
        viz.beam_tree(model, [[1, 2]], 2)
    with pytest.raises(ArgumentError, match="beam_tree: beam_width=0"):
        viz.beam_tree(model, [1], 2, beam_width=0)


# ------------------------------------------------------------------------------ lr_schedule
def warmup_cosine(step, peak, warmup, total, floor):
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if step >= total:
        return floor
    return floor + (peak - floor) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


def test_lr_schedule_draws_each_schedule_at_every_step():
    config = TrainConfig(max_steps=50, learning_rate=3e-3, warmup_steps=5, min_lr_ratio=0.2)
    ax = one_axes(viz.lr_schedule({"trainer": config, "constant": lambda s: 1e-3}, steps=60))
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(),
                               [warmup_cosine(s, 3e-3, 5, 50, 6e-4) for s in range(60)])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 1e-3)
    assert len(one_axes(viz.lr_schedule(config)).lines[0].get_xdata()) == 50
    optimizer = optim.SGD([nn.Parameter(np.zeros(1))], lr=2.0)  # Noam replaces this lr
    noam = optim.NoamSchedule(optimizer, d_model=16, warmup_steps=4)
    ydata = one_axes(viz.lr_schedule(noam, 10)).lines[0].get_ydata()
    np.testing.assert_allclose(ydata, [16**-0.5 * min((s + 1) ** -0.5, (s + 1) * 4**-1.5)
                                       for s in range(10)])


def test_lr_schedule_errors():
    with pytest.raises(ArgumentError, match="lr_schedule: steps=None"):
        viz.lr_schedule(lambda s: 0.1)
    with pytest.raises(TypeError, match="lr_schedule: 'x' is a str"):
        viz.lr_schedule({"x": "cosine"}, 5)


# --------------------------------------------------------------------------- gradient_norms
def test_gradient_norms_one_point_per_parameter_or_layer():
    model = tiny_gpt()
    ids = rng.integers(0, 5, (2, 6))
    model(ids, ids)[1].backward()
    named = [(n, p.grad) for n, p in model.named_parameters()]
    ax = one_axes(viz.gradient_norms(model))
    np.testing.assert_allclose(ax.lines[0].get_ydata(),
                               [np.linalg.norm(g.ravel()) for _, g in named], rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == [n for n, _ in named]

    layers = one_axes(viz.gradient_norms(model, by="layer"))
    labels = [t.get_text() for t in layers.get_xticklabels()]
    assert "transformer.h.0" in labels and "transformer.h.1" in labels
    block = [g for n, g in named if n.startswith("transformer.h.1.")]
    pooled = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in block))
    assert math.isclose(layers.lines[0].get_ydata()[labels.index("transformer.h.1")], pooled,
                        rel_tol=1e-6)

    other = tiny_gpt(seed=1)
    other(ids, ids)[1].backward()
    assert len(one_axes(viz.gradient_norms({"a": model, "b": other})).lines) == 2
    numbered = one_axes(viz.gradient_norms({f"layers.{i}.w": np.full(2, i) for i in range(12)},
                                           by="layer"))
    assert [t.get_text() for t in numbered.get_xticklabels()] == [str(i) for i in range(12)]
    assert numbered.get_xlabel() == "layer (layers.N)"
    np.testing.assert_allclose(numbered.lines[0].get_ydata()[1:],
                               [math.sqrt(2) * i for i in range(1, 12)])


def test_gradient_norms_errors():
    with pytest.raises(ArgumentError, match="gradient_norms: no parameter .* call "
                                            r"loss.backward\(\) first"):
        viz.gradient_norms(tiny_gpt())
    with pytest.raises(ArgumentError, match="by='block'"):
        viz.gradient_norms({"w": np.ones(3)}, by="block")


# ------------------------------------------------------------------------------ loss_curves
TEXT = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 3


def train_tiny(run_dir, steps=6):
    tokenizer = CharTokenizer().train(TEXT)
    ids = np.array(tokenizer.encode(TEXT))
    model = tiny_gpt(vocab_size=tokenizer.vocab_size, n_layer=1)
    config = TrainConfig(max_steps=steps, batch_size=2, warmup_steps=1, eval_interval=3,
                         eval_batches=1, checkpoint_interval=steps)
    trainer = Trainer(model, ids, ids, config, str(run_dir))
    trainer.train(progress=False)
    return trainer


def test_loss_curves_reads_the_run_folder(tmp_path):
    trainer = train_tiny(tmp_path / "a")
    ax = one_axes(viz.loss_curves(tmp_path / "a", smooth=2))
    assert len(ax.lines) == 3  # train per step, its running mean, validation
    raw, mean, val = ax.lines
    np.testing.assert_allclose(raw.get_ydata(), trainer.history["train_loss"])
    losses = np.array(trainer.history["train_loss"])
    np.testing.assert_allclose(mean.get_ydata(), (losses[1:] + losses[:-1]) / 2)
    np.testing.assert_allclose(val.get_xdata(), [3, 6])
    np.testing.assert_allclose(val.get_ydata(), trainer.history["val_loss"])
    train_tiny(tmp_path / "b", steps=3)
    assert len(one_axes(viz.loss_curves([tmp_path / "a", tmp_path / "b"])).lines) == 6


def test_loss_curves_names_a_folder_without_a_run(tmp_path):
    with pytest.raises(RunNotFoundError, match="loss_curves: no checkpoint.npz in"):
        viz.loss_curves(tmp_path)


# -------------------------------------------------------------------- languages and fonts
CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"^[\s\d.,:%×−\-+e‖·₂()\[\]/Σ∂]*$")


def every_figure(lang, tmp_path):
    """One figure of every viz function, its own text in ``lang``; the data (tokens, names)
    are digits or single letters."""
    w, x = (sl.tensor(v, requires_grad=True) for v in (0.5, 2.0))
    z = (w * x).tanh()
    model = tiny_gpt()
    ids = rng.integers(0, 5, (2, 6))
    model(ids, ids)[1].backward()
    train_tiny(tmp_path / "run", steps=3)
    return {
        "draw_graph": viz.draw_graph(z, lang=lang),
        "attention_heatmap": viz.attention_heatmap(np.eye(3)[None].repeat(2, 0), list("abc"),
                                                   list("abc"), lang=lang),
        "embedding_map": viz.embedding_map(np.eye(3), list("abc"), lang=lang),
        "beam_tree": viz.beam_tree(tiny_gpt(), [1, 2], 2, beam_width=2, lang=lang),
        "lr_schedule": viz.lr_schedule(lambda s: 0.1, 5, lang=lang),
        "gradient_norms": viz.gradient_norms(model, by="layer", lang=lang),
        "loss_curves": viz.loss_curves(tmp_path / "run", lang=lang),
    }


def words(fig):
    """Every piece of text ``fig`` shows (titles, axis labels, legends, colour bar, tick
    labels, node labels) that is more than numbers and single letters."""
    from matplotlib.text import Text

    fig.canvas.draw()  # makes the tick labels
    found = []
    for t in fig.findobj(Text):
        if not t.get_visible():
            continue
        for line in t.get_text().splitlines():
            line = re.sub(r"'[^']*'|\b[A-Za-z]\b|\$[^$]*\$", "", line)  # tokens, symbols
            if line.strip() and not NUMBER.match(line):
                found.append(line)
    return found


def test_chinese_figures_write_every_label_in_chinese(tmp_path):
    """lang="zh": every title, axis label, legend entry and colour-bar label is Chinese; the
    op names (Mul, Tanh) and layer names are code, not words, and stay."""
    code = re.compile(r"^(Mul|Tanh|transformer\.[\w.]+|lm_head\.[\w.]+|ln_f|\w+\.\w+)$")
    for name, fig in every_figure("zh", tmp_path).items():
        for text in words(fig):
            assert CJK.search(text) or code.match(text.strip()), f"{name}: {text!r}"
    english = every_figure("en", tmp_path / "en")
    assert not any(CJK.search(text) for fig in english.values() for text in words(fig))


def test_chinese_figures_draw_with_an_installed_cjk_font(tmp_path):
    font = viz.cjk_font(warn=False)
    if font is None:
        pytest.skip(f"no CJK font installed (apt-get install {viz.CJK_FONT_PACKAGE})")
    from matplotlib import font_manager

    fig = viz.lr_schedule(lambda s: 0.1, 5, lang="zh")
    title = fig.axes[0].title
    assert font in title.get_fontfamily()
    chosen = font_manager.fontManager._find_fonts_by_props(title.get_fontproperties())
    assert any(font_manager.get_font(path).family_name == font for path in chosen)
    assert viz.font_settings("zh")["font.family"][-1] == font
    assert viz.font_settings("en") == {}


def test_no_cjk_font_warns_once_naming_the_package(monkeypatch):
    monkeypatch.setattr(viz, "_cjk", [""])
    monkeypatch.setattr(viz, "_warned", [])
    with pytest.warns(UserWarning, match="apt-get install fonts-noto-cjk") as caught:
        viz.lr_schedule(lambda s: 0.1, 5, lang="zh")
        viz.lr_schedule(lambda s: 0.1, 5, lang="zh")
        assert viz.font_settings("zh") == {}
    assert len([w for w in caught if "fonts-noto-cjk" in str(w.message)]) == 1


def test_viz_leaves_matplotlibs_settings_alone():
    """Importing viz and drawing Chinese figures change no global matplotlib setting."""
    script = textwrap.dedent("""
        import matplotlib
        before = dict(matplotlib.rcParams)
        from scratchlm import viz
        viz.lr_schedule(lambda s: 0.1, 5, lang="zh")._repr_png_()
        viz.font_settings("zh")
        changed = [k for k, v in matplotlib.rcParams.items() if before[k] != v]
        print("changed:", changed)
    """)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=REPO, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "changed: []"


def test_figures_show_themselves_in_a_notebook_without_pyplot():
    png = viz.embedding_map(np.eye(3))._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_viz_makes_no_pyplot_figure():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    viz.attention_heatmap(np.eye(3))
    viz.embedding_map(np.eye(3))
    assert plt.get_fignums() == before


# ------------------------------------------------------------ training keeps the backend
def test_training_keeps_matplotlibs_backend(tmp_path):
    """A run that saves (and so draws loss.png) leaves the backend a notebook chose: before
    the fix, Trainer called matplotlib.use("Agg") and a notebook's later plots were blank."""
    script = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        import sys
        sys.path.insert(0, {os.path.join(REPO, "tests")!r})
        from test_viz import train_tiny
        train_tiny({str(tmp_path / "run")!r}, steps=2)
        print("backend:", matplotlib.get_backend(), plt.get_fignums())
    """)
    env = dict(os.environ, MPLBACKEND="", PYTHONPATH=REPO, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].split() == ["backend:", "svg", "[]"]
    with open(tmp_path / "run" / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
