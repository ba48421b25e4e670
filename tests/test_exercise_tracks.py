"""The five tracks of exercises: every hidden reference scores full marks, a planted wrong
answer per exercise loses its points with a report naming what is wrong, and the references
themselves agree with independent sources (the library where it has the op, formulas,
hand-computed values) — so a wrong reference cannot make a wrong answer pass.

(The backward exercises of track 2 have their own tests in test_exercises.py; here each is
only graded with its reference.)"""

import ast
import importlib
import math
from contextlib import contextmanager

import numpy as np
import pytest
import setuptools

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import metrics, optim
from scratchlm.exercises import EXERCISES, grade
from scratchlm.exercises.__main__ import hints, load_class, main, statement
from scratchlm.exercises.catalog import TRACKS
from scratchlm.exercises.minigrad import Value
from scratchlm.exercises.tasks import ReferenceMissing, Task
from scratchlm.sampling_filters import top_k_filter, top_p_filter

TASKS = {name: e for name, e in EXERCISES.items() if isinstance(e, Task)}


def ref(module):
    return importlib.import_module(f"scratchlm.exercises.reference.{module}")


engine, layers, modern, optimization, data = (ref(m) for m in (
    "engine", "layers", "modern", "optimization", "data"))


def reference_of(exercise):
    return exercise.reference() if isinstance(exercise, Task) else exercise.reference_class


# ------------------------------------------------------------------------ the catalogue
def test_at_least_thirty_exercises_in_five_tracks():
    assert len(EXERCISES) >= 30
    assert {e.track for e in EXERCISES.values()} == set(TRACKS) == {1, 2, 3, 4, 5}
    for exercise in EXERCISES.values():
        assert exercise.points > 0 and exercise.hints and exercise.formula and exercise.task
        assert len(exercise.cases) >= 1
    per_track = {t: sum(e.track == t for e in EXERCISES.values()) for t in TRACKS}
    assert min(per_track.values()) >= 5, per_track


@pytest.mark.parametrize("name", EXERCISES)
def test_every_reference_scores_full_marks(name):
    report = grade(name, reference_of(EXERCISES[name]))
    assert report.passed, str(report)
    assert report.points == EXERCISES[name].points
    assert f"points: {EXERCISES[name].points} of {EXERCISES[name].points}" in str(report)


def test_track_three_is_not_in_the_library():
    """The answers of track 3 are not one import away: no module of the package outside
    scratchlm/exercises defines them, and the references folder is not a package."""
    root = importlib.import_module("scratchlm").__path__[0]
    names = {"rmsnorm", "swiglu", "rotary", "rope", "groupedquery", "gqa", "alibi", "silu"}
    import pathlib
    for path in pathlib.Path(root).rglob("*.py"):
        if "exercises" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                squashed = node.name.lower().replace("_", "")
                assert not any(n in squashed for n in names), f"{path}: {node.name}"
    packages = setuptools.find_packages(str(pathlib.Path(root).parent), include=["scratchlm*"])
    assert "scratchlm.exercises" in packages
    assert not any("reference" in p for p in packages), packages


def test_a_missing_reference_says_where_it_lives():
    import dataclasses
    task = dataclasses.replace(TASKS["rmsnorm"], solution="nowhere:RMSNorm")
    with pytest.raises(ReferenceMissing, match="only the instructor's source tree has"):
        task.reference()


# ------------------------------------------------------------------- planted wrong answers
def _topo_recursive(root):
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)
    visit(root)
    return order


def _topo_no_visited_set(root):
    order = []

    def visit(node):
        for parent in node.parents:
            visit(parent)
        order.append(node)
    visit(root)
    return order


def _unbroadcast_leading_only(grad, shape):
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    return grad


def _backward_overwrites(root, grad=None):
    root.grad = np.ones_like(root.data)
    for node in reversed(engine.topological_order(root)):
        for parent, local in zip(node.parents, node.local_grads):
            parent.grad = engine.unbroadcast(local(node.grad), parent.data.shape)


@contextmanager
def _no_grad_restores_true():
    Value.recording = False
    yield
    Value.recording = True


def _train_without_zeroing(X, Y, steps, lr, hidden=8, seed=0):
    params = engine.init_mlp(X.shape[1], hidden, Y.shape[1], seed)
    losses = []
    for _ in range(steps):
        d = engine.mlp(params, X) - Y
        loss = (d * d).mean()
        engine.backward(loss)
        for p in params:
            p.data = p.data - lr * p.grad
        losses.append(float(loss.data))
    return losses


class DropoutForgetsTheScale(layers.MaskedDropout):
    def backward(self, g):
        return g * self.keep, None


class SplitHeadsWithoutTheSwap(layers.SplitHeads):
    def backward(self, g):
        return g.reshape(self.shape)


class BlockForgetsTheQKVBias(layers.PreLNBlock):
    def backward(self, g):
        grads = list(super().backward(g))
        grads[4] = np.zeros_like(grads[4])
        return tuple(grads)


class RMSNormConstantScale(modern.RMSNorm):
    def backward(self, g):
        return g * self.weight * self.rstd, (g * self.norm).reshape(-1, g.shape[-1]).sum(0)


class SwiGLUWithoutTheSigmoidSlope(modern.SwiGLU):
    def backward(self, g):
        return g * self.b * self.s, g * self.a * self.s


class RotaryRotatesForwardAgain(modern.Rotary):
    def backward(self, g):
        return modern.Rotary.forward(self, g)


class GQATakesOneCopy(modern.GroupedQueryAttention):
    def backward(self, g):
        dq, dk, dv = modern.attend_backward(g, self.q, self.k, self.v, self.weights)
        return dq, dk[..., ::self.group, :, :], dv[..., ::self.group, :, :]


class ALiBiWrongSign(modern.ALiBiAttention):
    def forward(self, q, k, v):
        heads, t, s = q.shape[-3], q.shape[-2], k.shape[-2]
        bias = modern.alibi_slopes(heads)[:, None, None] * (
            np.arange(t)[:, None] - np.arange(s)[None, :])
        self.q, self.k, self.v = q, k, v
        out, self.weights = modern.attend(q, k, v, bias, causal=True)
        return out


def _sgd_ignores_nesterov(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0,
                          nesterov=False):
    return optimization.sgd_step(param, grad, velocity, lr, momentum, weight_decay)


def _adam_without_bias_correction(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999,
                                  eps=1e-8, weight_decay=0.0):
    grad = grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * m / (np.sqrt(v) + eps), m, v


def _adamw_as_l2(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                 weight_decay=0.01):
    return optimization.adam_step(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay)


def _warmup_from_zero(step, max_lr, warmup_steps, total_steps, min_lr):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    return optimization.warmup_cosine(step, max_lr, warmup_steps, total_steps, min_lr)


def _clip_each_array(grads, max_norm):
    norms = [math.sqrt(float((g * g).sum())) for g in grads]
    clipped = [g * min(1.0, max_norm / (n + 1e-6)) for g, n in zip(grads, norms)]
    return clipped, math.sqrt(sum(n * n for n in norms))


def _mlm_without_unchanged(ids, mask_id, vocab_size, special_ids, rng):
    inputs, labels = data.mlm_mask(ids, mask_id, vocab_size, special_ids, rng)
    chosen = labels != -100
    kept = chosen & (inputs == ids)
    inputs[kept] = mask_id  # 90% [MASK], 10% random: the "unchanged" 10% forgotten
    return inputs, labels


def _mlm_global_random(ids, mask_id, vocab_size, special_ids, rng):
    return data.mlm_mask(ids, mask_id, vocab_size, special_ids, np.random.default_rng())


def _nsp_any_document(documents, rng):
    pairs = []
    everything = [s for doc in documents for s in doc]
    for doc in documents:
        for i in range(len(doc) - 1):
            if rng.random() < 0.5:
                pairs.append((doc[i], doc[i + 1], 1))
            else:
                pairs.append((doc[i], everything[rng.integers(len(everything))], 0))
    return pairs


def _top_k_without_ties(logits, k):
    logits = np.asarray(logits, dtype=np.float64)
    order = np.argsort(logits, axis=-1)[..., ::-1]
    out = np.full_like(logits, -np.inf)
    keep = order[..., :k]
    np.put_along_axis(out, keep, np.take_along_axis(logits, keep, -1), -1)
    return out


def _top_p_drops_the_crossing_token(logits, p):
    logits = np.asarray(logits, dtype=np.float64)
    rows = logits.reshape(-1, logits.shape[-1])
    out = np.full_like(rows, -np.inf)
    for r, row in enumerate(rows):
        order = np.argsort(row, kind="stable")[::-1]
        probs = np.exp(row[order] - row[order].max())
        probs /= probs.sum()
        keep = order[np.cumsum(probs) <= p]
        keep = keep if keep.size else order[:1]
        out[r, keep] = row[keep]
    return out.reshape(logits.shape)


def _beam_search_expands_finished(log_probs, bos, eos, beam_width, max_len):
    beams = [([bos], 0.0)]
    for _ in range(max_len):
        beams = sorted([(s + [t], c + float(log_probs[s[-1], t])) for s, c in beams
                        for t in range(log_probs.shape[1])], key=lambda b: -b[1])[:beam_width]
    return beams[0]


def _bleu_without_clipping(hypotheses, references, max_n=4):
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    for hyp, ref_tokens in zip(hypotheses, references):
        c, r = c + len(hyp), r + len(ref_tokens)
        for n in range(1, max_n + 1):
            grams = {tuple(ref_tokens[i:i + n]) for i in range(len(ref_tokens) - n + 1)}
            found = [tuple(hyp[i:i + n]) in grams for i in range(len(hyp) - n + 1)]
            matches[n - 1] += sum(found)
            totals[n - 1] += len(found)
    if min(matches) == 0:
        return 0.0
    brevity = 1.0 if c >= r else math.exp(1 - r / c)
    return 100 * brevity * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals)) / 4)


def _rouge_l_substring(hypothesis, reference):
    best = 0
    for i in range(len(hypothesis)):
        for j in range(len(reference)):
            k = 0
            while (i + k < len(hypothesis) and j + k < len(reference)
                   and hypothesis[i + k] == reference[j + k]):
                k += 1
            best = max(best, k)
    if best == 0:
        return 0.0, 0.0, 0.0
    p, r = best / len(hypothesis), best / len(reference)
    return p, r, 2 * p * r / (p + r)


def _perplexity_naive(logits, targets, ignore_index=-100):
    rows, targets = logits.reshape(-1, logits.shape[-1]), np.asarray(targets).reshape(-1)
    keep = targets != ignore_index
    with np.errstate(over="ignore", invalid="ignore"):
        nll = np.log(np.exp(rows).sum(-1))[keep] - rows[keep, targets[keep]]
    return float(np.exp(nll.mean()))


#: exercise: (planted wrong answer, label of a case it fails, what that case's report says)
PLANTED = {
    "engine_topo": (_topo_recursive, "a chain of 5,000", "RecursionError"),
    "engine_unbroadcast": (_unbroadcast_leading_only, "grad (3, 4) to (3, 1)",
                           "has shape (3, 4); the hidden reference gives (3, 1)"),
    "engine_backward": (_backward_overwrites, "x used three times",
                        "the gradient of x differs from central differences"),
    "engine_no_grad": (_no_grad_restores_true, "six probes",
                       "wrong: still off after a nested block ends"),
    "engine_train": (_train_without_zeroing, "XOR", "the losses differs from the losses of a "
                                                    "correct engine"),
    "dropout": (DropoutForgetsTheScale, "x (3, 4), p=0.5", "the gradient of x differs from "
                                                           "central differences"),
    "split_heads": (SplitHeadsWithoutTheSwap, "x (2, 3, 8), 2 heads",
                    "the gradient of x differs"),
    "transformer_block": (BlockForgetsTheQKVBias, "B=2, T=3, C=4",
                          "the gradient of b_qkv differs from central differences"),
    "rmsnorm": (RMSNormConstantScale, "x (4, 6)", "the gradient of x differs"),
    "swiglu": (SwiGLUWithoutTheSigmoidSlope, "a (3, 4)", "the gradient of a differs"),
    "rope": (RotaryRotatesForwardAgain, "x (5, 4)", "a numerical derivative is not a "
                                                    "derivation: backward called its op's "
                                                    "forward"),
    "gqa": (GQATakesOneCopy, "q (4, 3, 2)", "the gradient of k differs"),
    "alibi": (ALiBiWrongSign, "q (2, 4, 3)", "forward output differs from the hidden reference"),
    "sgd_momentum": (_sgd_ignores_nesterov, "nesterov=True", "result[0] differs"),
    "adam": (_adam_without_bias_correction, "param (3, 4)", "result[0] differs"),
    "adamw": (_adamw_as_l2, "weight_decay=0.5", "result[0] differs"),
    "warmup_cosine": (_warmup_from_zero, "W=10", "result differs"),
    "clip_grad_norm": (_clip_each_array, "above the limit", "clipped[0] differs"),
    "mlm_masking": (_mlm_without_unchanged, "160 × 128",
                    "of the chosen, the fraction shown as [MASK]"),
    "nsp_pairs": (_nsp_any_document, "60 documents", "a random B must come from another "
                                                     "document"),
    "top_k": (_top_k_without_ties, "ties at the k-th", "result differs"),
    "top_p": (_top_p_drops_the_crossing_token, "p=0.9", "result differs"),
    "beam_search": (_beam_search_expands_finished, "greedy", "tokens is [0,"),
    "bleu": (_bleu_without_clipping, "clipping", "result differs"),
    "rouge_l": (_rouge_l_substring, "a subsequence, not a substring", "precision differs"),
    "perplexity": (_perplexity_naive, "logits in the thousands", "result differs"),
}


def test_every_task_has_a_planted_wrong_answer():
    assert set(PLANTED) == set(TASKS)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a wrong engine overflows
@pytest.mark.parametrize("name", PLANTED)
def test_planted_wrong_answer_loses_its_points(name):
    wrong, label, message = PLANTED[name]
    report = grade(name, wrong)
    assert not report.passed and report.points < EXERCISES[name].points
    failing = [case for case in report.cases if label in case.label]
    assert failing and not failing[0].passed, str(report)
    assert message in failing[0].failure, failing[0].failure
    text = str(report)
    assert "FAILED" in text and "hint 1 of" in text and f"of {EXERCISES[name].points}" in text


def test_mlm_masking_with_the_global_generator_fails():
    report = grade("mlm_masking", _mlm_global_random)
    assert "draw every random number from the rng argument" in report.cases[0].failure


def test_a_gradient_failure_shows_errors_and_numbers_side_by_side():
    failure = grade("rmsnorm", RMSNormConstantScale).cases[0].failure
    assert failure.startswith("the gradient of x differs from central differences of ⟨f(x), "
                              "c⟩ for a random cotangent c:")
    assert "worst absolute error" in failure and "worst relative error" in failure
    assert "yours" in failure and "expected" in failure
    assert len([line for line in failure.splitlines() if line.strip().startswith("(")]) == 4


def test_an_op_that_modifies_its_gradient_fails():
    class SwiGLUInPlace(modern.SwiGLU):
        def backward(self, g):
            g *= self.s
            return g * self.b * (1.0 + self.a * (1.0 - self.s)), g * self.a

    assert "backward modified its incoming gradient g in place" in (
        grade("swiglu", SwiGLUInPlace).cases[0].failure)


def test_a_function_that_modifies_its_input_fails():
    def top_k_in_place(logits, k):
        logits[logits < np.sort(logits, axis=-1)[..., -k][..., None]] = -np.inf
        return logits

    failure = grade("top_k", top_k_in_place).cases[0].failure
    assert "it modified its input logits in place" in failure


def test_delegating_to_the_library_does_not_count():
    def mine(logits, p):
        return top_p_filter(logits, p)  # a name bound before grading started

    report = grade("top_p", mine)
    assert not report.passed
    assert "delegates to the library's implementation (scratchlm.sampling_filters.top_p_filter)" \
        in report.cases[0].failure

    def adam_with_the_library(param, grad, m, v, t, lr=1e-3, **kwargs):
        p = sl.tensor(param.copy(), requires_grad=True)
        p.grad = grad.copy()
        opt = optim.Adam([p], lr=lr)
        opt.step()
        return p.data, m, v

    report = grade("adam", adam_with_the_library)
    assert all("delegates to the library's implementation" in c.failure for c in report.cases)
    assert grade("top_p", data.top_p_filter).passed  # the library is back


# -------------------------------------------- the references against independent sources
def test_optimizer_references_match_the_library():
    rng = np.random.default_rng(0)
    for kind, step, config in [
            ("sgd", optimization.sgd_step, dict(lr=0.1, momentum=0.9, nesterov=True,
                                                weight_decay=0.1)),
            ("adam", optimization.adam_step, dict(lr=0.01, weight_decay=0.1)),
            ("adamw", optimization.adamw_step, dict(lr=0.01, weight_decay=0.1))]:
        start = rng.standard_normal((3, 4))
        grads = [rng.standard_normal((3, 4)) for _ in range(4)]
        p = sl.tensor(start.copy(), requires_grad=True)
        opt = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW}[kind]([p], **config)
        param, state = start.copy(), [np.zeros_like(start), np.zeros_like(start)]
        for t, grad in enumerate(grads, start=1):
            p.grad = grad.copy()
            opt.step()
            if kind == "sgd":
                param, state[0] = step(param, grad, state[0], **config)
            else:
                param, state[0], state[1] = step(param, grad, *state, t, **config)
            np.testing.assert_allclose(param, p.data, rtol=1e-12, atol=1e-14)


def test_schedule_and_clipping_references_match_the_library():
    from scratchlm.optim.lr_scheduler import warmup_cosine_lr
    for step in range(0, 130, 7):
        assert optimization.warmup_cosine(step, 1e-3, 10, 100, 1e-4) == pytest.approx(
            warmup_cosine_lr(step, 1e-3, 10, 100, 1e-4), rel=1e-12)
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) * 3 for s in [(3, 4), (5,)]]
    tensors = [sl.tensor(g.copy(), requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = g.copy()
    total = optim.clip_grad_norm_(tensors, 1.0)
    clipped, norm = optimization.clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(total, rel=1e-12)
    for t, c in zip(tensors, clipped):
        np.testing.assert_allclose(c, t.grad, rtol=1e-6)


def test_filter_and_metric_references_match_the_library():
    rng = np.random.default_rng(2)
    logits = np.round(rng.standard_normal((4, 9)), 1)  # rounding makes ties
    for k in (1, 3, 9, 20):
        np.testing.assert_array_equal(data.top_k_filter(logits, k), top_k_filter(logits, k))
    for p in (0.05, 0.5, 0.9, 1.0):
        np.testing.assert_array_equal(data.top_p_filter(logits, p), top_p_filter(logits, p))
    hyp, ref_text = "the cat is on the mat today", "the cat is on the mat"
    assert data.bleu([hyp.split()], [ref_text.split()]) == pytest.approx(
        metrics.bleu([hyp], [ref_text], tokenize="none"), abs=1e-9)
    score = metrics.rouge("police killed the gunman", "the police kill the gunman")["rougeL"]
    assert data.rouge_l(["police", "killed", "the", "gunman"],
                        ["the", "police", "kill", "the", "gunman"]) == pytest.approx(
        (score.precision, score.recall, score.fmeasure))
    z, t = rng.standard_normal((2, 3, 6)), np.array([[1, -100, 5], [0, 0, -100]])
    nll = F.cross_entropy(sl.tensor(z), t).item()
    assert data.perplexity(z, t) == pytest.approx(math.exp(nll), rel=1e-12)


def test_bleu_and_rouge_by_hand():
    # 'the the the the' against 'the cat': unigram precision 1/4 after clipping (BLEU-1)
    assert data.bleu([["the"] * 4], [["the", "cat"]], max_n=1) == pytest.approx(25.0)
    # LCS of 'a b c d' and 'a c d' is 3: P = 3/4, R = 1, F = 6/7
    assert data.rouge_l(["a", "b", "c", "d"], ["a", "c", "d"]) == pytest.approx((0.75, 1.0, 6 / 7))


def test_beam_search_reference_by_hand():
    table = np.log(np.array([[0.1, 0.5, 0.4],    # from 0: 1 (eos) likelier than 2
                             [1 / 3, 1 / 3, 1 / 3],
                             [0.05, 0.05, 0.9]]))  # from 2: 2 again, surely
    assert data.beam_search(table, 0, 1, 1, 3)[0] == [0, 1]  # greedy takes eos at once
    tokens, score = data.beam_search(table, 0, 1, 2, 3)      # 0.4·0.9·0.9 = 0.324 < 0.5
    assert tokens == [0, 1] and score == pytest.approx(math.log(0.5))
    tokens, score = data.beam_search(table, 0, 1, 2, 1)
    assert tokens == [0, 1]


def test_modern_op_references_against_formulas_and_the_library():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 5)), rng.standard_normal(5)
    y = modern.RMSNorm(1e-6).forward(x, w)
    np.testing.assert_allclose(y, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * w)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    np.testing.assert_allclose(modern.SwiGLU().forward(a, b), a / (1 + np.exp(-a)) * b)
    # rotary: a query at position t and a key at s score by t − s only
    q, k = rng.standard_normal((1, 8)), rng.standard_normal((1, 8))
    scores = [(modern.Rotary(offset=t).forward(q) @ modern.Rotary(offset=s).forward(k).T).item()
              for t, s in [(5, 2), (13, 10)]]
    assert scores[0] == pytest.approx(scores[1])
    np.testing.assert_allclose(np.linalg.norm(modern.Rotary().forward(q)), np.linalg.norm(q))
    # grouped-query attention with the heads repeated is the library's attention
    q, k, v = (rng.standard_normal(s) for s in [(2, 4, 3, 2), (2, 2, 3, 2), (2, 2, 3, 2)])
    expected = F.scaled_dot_product_attention(sl.tensor(q), sl.tensor(np.repeat(k, 2, 1)),
                                              sl.tensor(np.repeat(v, 2, 1)), is_causal=True)
    np.testing.assert_allclose(modern.GroupedQueryAttention(True).forward(q, k, v),
                               expected.data, atol=1e-12)
    # ALiBi is attention with a float mask m·(j − i) and the causal triangle
    q, k, v = (rng.standard_normal((4, 3, 2)) for _ in range(3))
    slopes = 2.0 ** (-8.0 * np.arange(1, 5) / 4)
    bias = slopes[:, None, None] * (np.arange(3)[None, :] - np.arange(3)[:, None])
    mask = np.where(np.tril(np.ones((3, 3), dtype=bool)), bias, -np.inf)
    expected = F.scaled_dot_product_attention(sl.tensor(q), sl.tensor(k), sl.tensor(v),
                                              attn_mask=mask)
    np.testing.assert_allclose(modern.ALiBiAttention().forward(q, k, v), expected.data,
                               atol=1e-12)


def test_block_and_heads_references_against_the_library():
    rng = np.random.default_rng(4)
    B, T, C, H = 2, 3, 4, 2
    x = rng.standard_normal((B, T, C))
    np.testing.assert_array_equal(layers.SplitHeads(H).forward(x),
                                  x.reshape(B, T, H, C // H).transpose(0, 2, 1, 3))
    shapes = [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,), (C, 4 * C),
              (4 * C,), (4 * C, C), (C,)]
    p = [rng.standard_normal(s) for s in shapes]
    t = sl.tensor(x)
    h = F.layer_norm(t, sl.tensor(p[0]), sl.tensor(p[1]))
    qkv = F.linear(h, sl.tensor(p[2].T), sl.tensor(p[3]))
    q, k, v = (qkv[:, :, i * C:(i + 1) * C].reshape(B, T, H, C // H).transpose(0, 2, 1, 3)
               for i in range(3))
    att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(0, 2, 1, 3)
    x2 = t + F.linear(att.reshape(B, T, C), sl.tensor(p[4].T), sl.tensor(p[5]))
    h2 = F.layer_norm(x2, sl.tensor(p[6]), sl.tensor(p[7]))
    y = x2 + F.linear(F.gelu(F.linear(h2, sl.tensor(p[8].T), sl.tensor(p[9]))),
                      sl.tensor(p[10].T), sl.tensor(p[11]))
    np.testing.assert_allclose(layers.PreLNBlock(H).forward(x, *p), y.data, atol=1e-10)


def test_mlm_reference_masks_as_the_library_describes():
    rng = np.random.default_rng(5)
    ids = rng.integers(4, 50, size=(400, 50))
    inputs, labels = data.mlm_mask(ids, 3, 50, (0, 1, 2, 3), np.random.default_rng(0))
    chosen = labels != -100
    assert abs(chosen.mean() - 0.15) < 0.01
    assert abs((inputs[chosen] == 3).mean() - 0.8) < 0.02


def test_engine_reference_by_hand():
    x = Value(np.array([1.0, 2.0]), name="x")
    y = (x * x + x).sum()          # dy/dx = 2x + 1
    engine.backward(y)
    np.testing.assert_array_equal(x.grad, [3.0, 5.0])
    assert engine.unbroadcast(np.ones((2, 3, 4)), (3, 1)).tolist() == [[8.0]] * 3
    with engine.no_grad():
        assert (x * x).parents == ()
    assert Value.recording is True


# ------------------------------------------------------------------- statements and hints
@pytest.mark.parametrize("name", TASKS)
def test_task_statement_is_a_file_that_fails_until_written(name, tmp_path):
    task = TASKS[name]
    text = statement(name)
    ast.parse(text)
    assert task.title in text and f"grade {name} THIS_FILE.py" in text
    path = tmp_path / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    if task.kind == "op":
        student = load_class(str(path), task.entry)
    else:
        import importlib.util
        spec = importlib.util.spec_from_file_location("stub", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        student = getattr(module, task.entry)
    report = grade(name, student)
    assert not report.passed and report.points == 0
    assert any("not written yet" in (case.failure or "") for case in report.cases), str(report)


def test_hints_unlock_one_at_a_time(capsys):
    assert main(["show", "rope", "--hint", "1"]) == 0
    first = capsys.readouterr().out
    assert "hint 1 of 3" in first and "hint 2 of" not in first
    assert "show rope --hint 2" in first
    assert hints("rope", 3).count("hint ") == 3 and "the next" not in hints("rope", 3)
    assert hints("rope", 99) == hints("rope", 3)


def test_list_shows_tracks_and_points(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for number, title in TRACKS.items():
        assert f"Track {number}: {title}" in out
    assert "transformer_block         8 pt" in out or "transformer_block" in out
