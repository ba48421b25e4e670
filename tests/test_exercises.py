"""The gradient-check exercises: every answer passes, every planted bug fails, and the report
says where and by how much.

The answer key is the library's reference class of each op; the planted wrong answers are
subclasses of it whose backward has the wrong formula (and never calls the reference's:
the grader fails a backward that delegates to the library)."""

import ast
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import scratchlm as sl
from scratchlm import backend
from scratchlm.exercises import EXERCISES, grade, skeletons
from scratchlm.exercises.__main__ import load_class, main, statement
from scratchlm.fast.registry import fast_version
from scratchlm.functional.activations import GELUTanh, Sigmoid
from scratchlm.functional.attention import ScaledDotProductAttention
from scratchlm.functional.cross_entropy import CrossEntropy
from scratchlm.functional.embedding import Embedding
from scratchlm.functional.layer_norm import LayerNorm
from scratchlm.functional.linear import Linear
from scratchlm.functional.softmax import LogSoftmax, Softmax
from scratchlm.ops.arithmetic import Mul
from scratchlm.ops.elementwise import Tanh
from scratchlm.ops.matmul import MatMul

REFERENCES = {"mul": Mul, "tanh": Tanh, "sigmoid": Sigmoid, "gelu_tanh": GELUTanh,
              "matmul": MatMul, "embedding": Embedding, "softmax": Softmax,
              "log_softmax": LogSoftmax, "cross_entropy": CrossEntropy, "layer_norm": LayerNorm,
              "attention": ScaledDotProductAttention, "linear": Linear,
              "cross_entropy_smoothing": CrossEntropy,
              "attention_masked": ScaledDotProductAttention}

#: the exercises whose answer is one library op's backward (the others: test_exercise_tracks)
BACKWARD = {name: exercise for name, exercise in EXERCISES.items()
            if exercise.kind == "backward"}


def fast_cpu(reference):
    """The fast class registered for ``reference`` on the CPU (even with fast mode off)."""
    with sl.use_fast(True):
        return fast_version(reference, "cpu")


def layer_norm_grad_x(op, g):
    """∂L/∂x of a LayerNorm, written out (a planted bug must not call the reference's)."""
    dnorm = g * op.weight
    return op.rstd * (dnorm - dnorm.mean(axis=-1, keepdims=True)
                      - op.norm * (dnorm * op.norm).mean(axis=-1, keepdims=True))


def embedding_grad_weight(op, g):
    grad = np.zeros(op.weight_shape)
    backend.scatter_add(grad, op.ids.reshape(-1), g.reshape(-1, op.weight_shape[1]))
    return grad


# ------------------------------------------------------------------ planted wrong backwards
class MulSwapsTheGradients(Mul):
    def backward(self, g):  # ∂y/∂a is b, not a
        return g * self.a, g * self.b


class TanhForgotTheSquare(Tanh):
    def backward(self, g):
        return g * (1.0 - self.y)


class SigmoidForgotOneMinusY(Sigmoid):
    def backward(self, g):
        return g * self.y


class GELUDroppedTanhTerm(GELUTanh):
    def backward(self, g):  # dy/dx is h + x dh/dx, not h
        return g * self.h


class MatMulTransposesBatchAxes(MatMul):
    def backward(self, g):  # .T reverses every axis, not just the last two
        return g @ self.b.T, self.a.T @ g


class EmbeddingDropsRepeatedIds(Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape)
        grad[self.ids] += g  # buffered: a repeated id keeps one row, not the sum
        return None, grad


class SoftmaxWithoutRowSum(Softmax):
    def backward(self, g):
        return self.y * g


class LogSoftmaxUsesLogProbs(LogSoftmax):
    def backward(self, g):
        return g - self.y * g.sum(axis=self.axis, keepdims=True)


class CrossEntropySumsInsteadOfMean(CrossEntropy):
    def backward(self, g):
        grad = self.probs.copy()
        grad[self.rows, self.targets] -= 1.0
        grad *= (self.valid * g)[:, None]
        return grad.reshape(self.logits_shape), None


class LayerNormTreatsStatisticsAsConstants(LayerNorm):
    def backward(self, g):
        features = g.shape[-1]
        return (g * self.weight * self.rstd,
                (g * self.norm).reshape(-1, features).sum(axis=0),
                g.reshape(-1, features).sum(axis=0))


class AttentionForgotScale(ScaledDotProductAttention):
    def backward(self, g):
        weights = self.weights
        grad_v = weights.swapaxes(-1, -2) @ g
        grad_weights = g @ self.v.swapaxes(-1, -2)
        grad_scores = weights * (grad_weights
                                 - (grad_weights * weights).sum(axis=-1, keepdims=True))
        return grad_scores @ self.k, grad_scores.swapaxes(-1, -2) @ self.q, grad_v, None


class LinearAveragesTheBias(Linear):
    def backward(self, g):
        g_rows = g.reshape(-1, g.shape[-1])
        return ((g_rows @ self.weight).reshape(self.x_shape), g_rows.T @ self.x_rows,
                g_rows.mean(axis=0))  # the bias is added to every row: a sum, not a mean


class CrossEntropyIgnoresSmoothing(CrossEntropy):
    def backward(self, g):
        grad = self.probs.copy()
        grad[self.rows, self.targets] -= 1.0
        return (grad * self.weights(g)[:, None]).reshape(self.logits_shape), None


# exercise: (planted bug, index of its first failing case, what the report says)
PLANTED_BUGS = {
    "mul": (MulSwapsTheGradients, 0, "central differences"),
    "tanh": (TanhForgotTheSquare, 0, "central differences"),
    "sigmoid": (SigmoidForgotOneMinusY, 0, "central differences"),
    "gelu_tanh": (GELUDroppedTanhTerm, 0, "central differences"),
    "matmul": (MatMulTransposesBatchAxes, 1, "MatMulTransposesBatchAxes.backward raised"),
    "embedding": (EmbeddingDropsRepeatedIds, 1, "central differences"),
    "softmax": (SoftmaxWithoutRowSum, 0, "central differences"),
    "log_softmax": (LogSoftmaxUsesLogProbs, 0, "central differences"),
    "cross_entropy": (CrossEntropySumsInsteadOfMean, 0, "central differences"),
    "layer_norm": (LayerNormTreatsStatisticsAsConstants, 0, "central differences"),
    "attention": (AttentionForgotScale, 0, "central differences"),
    "linear": (LinearAveragesTheBias, 0, "the gradient of bias (gradcheck's input 2)"),
    "cross_entropy_smoothing": (CrossEntropyIgnoresSmoothing, 0, "central differences"),
    "attention_masked": (AttentionForgotScale, 0, "central differences"),
}


def test_every_exercise_has_a_planted_bug():
    assert set(PLANTED_BUGS) == set(BACKWARD)


def test_the_answer_key_is_the_library():
    assert {name: exercise.reference_class for name, exercise in BACKWARD.items()} == REFERENCES


@pytest.mark.parametrize("name", BACKWARD)
def test_reference_solution_passes(name):
    report = grade(name, REFERENCES[name])
    assert report.passed, str(report)
    assert len(report.cases) >= 3
    assert "PASSED" in str(report)


@pytest.mark.parametrize("name", PLANTED_BUGS)
def test_planted_bug_fails_where_expected(name):
    bug, first_failing, message = PLANTED_BUGS[name]
    report = grade(name, bug)
    assert not report.passed
    assert [case.passed for case in report.cases[:first_failing + 1]] == (
        [True] * first_failing + [False])
    assert message in report.cases[first_failing].failure
    assert "FAILED" in str(report) and report.cases[first_failing].label in str(report)


def test_report_carries_gradcheck_message():
    failure = grade("softmax", SoftmaxWithoutRowSum).cases[1].failure
    assert failure.startswith("the gradient of x (gradcheck's input 0) differs from central")
    assert "gradcheck failed for input 0 of SoftmaxWithoutRowSum of shape (3, 4)" in failure
    assert "worst absolute error" in failure and "worst relative error" in failure


def test_report_names_the_input_whose_gradient_is_wrong():
    failure = grade("embedding", EmbeddingDropsRepeatedIds).cases[1].failure
    assert failure.startswith("the gradient of weight (gradcheck's input 0) differs")
    assert "of shape (5, 4)" in failure


@pytest.mark.parametrize("name", BACKWARD)
def test_skeleton_fails_until_backward_is_written(name):
    report = grade(name, EXERCISES[name].skeleton)
    assert not any(case.passed for case in report.cases)
    assert all("backward is not written yet: return" in case.failure for case in report.cases)


@pytest.mark.parametrize("name", BACKWARD)
def test_skeleton_is_the_reference_without_its_backward(name):
    skeleton = EXERCISES[name].skeleton
    assert skeleton.__bases__ == (REFERENCES[name],)
    assert skeleton.__name__ == REFERENCES[name].__name__
    assert set(vars(skeleton)) & {"forward", "__init__"} == set()
    assert "backward" in vars(skeleton)
    with pytest.raises(NotImplementedError, match="from g and what forward saved: self"):
        skeleton().backward(np.ones(3))


# ----------------------------------------------------------------- what else the grader sees
class SoftmaxInPlace(Softmax):
    def backward(self, g):
        g -= (g * self.y).sum(axis=self.axis, keepdims=True)
        g *= self.y
        return g


class SigmoidSlightlyOff(Sigmoid):
    """Within gradcheck's tolerance of central differences, but not the exact derivative."""

    def backward(self, g):
        return g * self.y * (1 - self.y) * (1 + 1e-5)


class SoftmaxAnswer(skeletons.Softmax):
    def backward(self, g):
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))


class SigmoidAnswer(skeletons.Sigmoid):
    def backward(self, g):
        return g * self.y * (1 - self.y)


@pytest.mark.parametrize("name, answer", [("softmax", SoftmaxAnswer),
                                          ("sigmoid", SigmoidAnswer)])
def test_a_written_answer_passes(name, answer):
    assert grade(name, answer).passed


class SoftmaxWrongForward(SoftmaxAnswer):
    def forward(self, x):
        self.y = np.exp(x) / np.exp(x).sum()
        return self.y


class LayerNormMissingGradients(LayerNorm):
    def backward(self, g):
        return layer_norm_grad_x(self, g)


class LayerNormUnsummedWeightGradient(LayerNorm):
    def backward(self, g):
        features = g.shape[-1]
        return (layer_norm_grad_x(self, g), (g * self.norm)[..., :-1],
                g.reshape(-1, features).sum(axis=0))


class EmbeddingGradientForIds(Embedding):
    def backward(self, g):
        return embedding_grad_weight(self, g)


class MulSumsTheWrongAxis(Mul):
    def backward(self, g):
        return g * self.b, (g * self.a).sum(axis=-1)


class SigmoidTakingAConfig(SigmoidAnswer):
    def __init__(self, steepness):
        self.steepness = steepness


@pytest.mark.parametrize("name, student, case, message", [
    ("softmax", SoftmaxInPlace, 0, "backward modified its incoming gradient g in place"),
    ("sigmoid", SigmoidSlightlyOff, 0, "gradient of x differs from scratchlm's own sigmoid: "
                                       "worst absolute error"),
    ("softmax", SoftmaxWrongForward, 1, "forward output differs from scratchlm's own softmax"),
    ("layer_norm", LayerNormMissingGradients, 0,
     "backward returned 1 gradient(s) for 3 input(s) (x, weight, bias)"),
    ("layer_norm", LayerNormUnsummedWeightGradient, 0,
     "the gradient of weight has shape (4, 5), but weight has shape (6,)"),
    ("embedding", EmbeddingGradientForIds, 0, "backward returned 1 gradient(s) for 2 input(s)"),
    ("mul", MulSumsTheWrongAxis, 1, "the gradient of b has shape (3,), but b has shape (4,)"),
    ("sigmoid", SigmoidTakingAConfig, 0, "SigmoidTakingAConfig() failed: TypeError"),
])
def test_grader_names_the_mistake(name, student, case, message):
    report = grade(name, student)
    assert not report.passed
    assert message in report.cases[case].failure


def test_forward_that_changes_its_input_is_caught():
    class SigmoidOverwritesX(skeletons.Sigmoid):
        def forward(self, x):
            np.negative(x, out=x)
            np.exp(x, out=x)
            self.y = 1.0 / (1.0 + x)
            return self.y

    failure = grade("sigmoid", SigmoidOverwritesX).cases[0].failure
    assert "forward modified its input x in place" in failure


def test_embedding_reference_accumulates_repeated_ids():
    """A hand-computed example: id 2 appears three times, so its row gets three rows of g."""
    op = Embedding()
    op.forward(np.array([2, 0, 2, 2]), np.zeros((3, 2)))
    g = np.arange(8.0).reshape(4, 2)
    _, grad = op.backward(g)
    np.testing.assert_array_equal(grad, [[2, 3], [0, 0], [0 + 4 + 6, 1 + 5 + 7]])


def test_grade_rejects_bad_arguments():
    with pytest.raises(KeyError, match="no exercise named 'softmx'; the exercises are"):
        grade("softmx", Softmax)
    with pytest.raises(TypeError, match="expected a subclass of sl.Function"):
        grade("softmax", Softmax())
    with pytest.raises(TypeError, match="expected a subclass of sl.Function"):
        grade("softmax", np.exp)


# ------------------------------------------------------------- delegating to the library
DELEGATES = "does not count: it delegates to the library's implementation"


@pytest.mark.parametrize("name", BACKWARD)
def test_backward_that_calls_the_reference_fails(name):
    skeleton = EXERCISES[name].skeleton

    class CallsTheReference(skeleton):
        def backward(self, g):
            return super(skeleton, self).backward(g)

    report = grade(name, CallsTheReference)
    reference = REFERENCES[name]
    where = f"({reference.__module__}.{reference.__qualname__}.backward)"
    assert not any(case.passed for case in report.cases), str(report)
    for case in report.cases:
        assert case.failure.startswith(f"CallsTheReference.backward {DELEGATES} {where}")
    assert grade(name, reference).passed  # the library's backward is back


class SoftmaxCallsTheClass(skeletons.Softmax):
    def backward(self, g):
        return Softmax.backward(self, g)


class SoftmaxCallsTheFastVersion(skeletons.Softmax):
    def backward(self, g):
        return fast_cpu(Softmax).backward(self, g)


class SoftmaxThroughTheEngine(skeletons.Softmax):
    def backward(self, g):  # softmax(log y) = y: the engine runs the library's backward
        x = sl.tensor(np.log(self.y), requires_grad=True)
        sl.functional.softmax(x, self.axis).backward(g)
        return x.grad


class SoftmaxCopiesTheBackward(skeletons.Softmax):
    backward = Softmax.backward


class SoftmaxWithoutBackward(Softmax):
    pass


@pytest.mark.parametrize("student, where", [
    (SoftmaxCallsTheClass, "scratchlm.functional.softmax.Softmax.backward"),
    (SoftmaxCallsTheFastVersion, "scratchlm.fast.cpu.SoftmaxInPlace.backward"),
    (SoftmaxThroughTheEngine, "scratchlm.functional.softmax.Softmax.backward"),
    (SoftmaxWithoutBackward, "scratchlm.functional.softmax.Softmax.backward"),
])
def test_every_way_of_delegating_fails(student, where):
    fast = fast_cpu(Softmax)
    original, fast_original = vars(Softmax)["backward"], vars(fast)["backward"]
    enabled = sl.is_fast_enabled()
    report = grade("softmax", student)
    assert not any(case.passed for case in report.cases), str(report)
    assert all(f"{student.__name__}.backward {DELEGATES} ({where})" in case.failure
               for case in report.cases)
    assert vars(Softmax)["backward"] is original and vars(fast)["backward"] is fast_original
    assert sl.is_fast_enabled() == enabled


def test_backward_that_is_the_library_function_fails():
    student = SoftmaxCopiesTheBackward
    report = grade("softmax", student)
    assert not any(case.passed for case in report.cases), str(report)
    assert all(case.failure.startswith(
        f"{student.__name__}.backward does not count: it is the library's implementation "
        "(scratchlm.functional.softmax.Softmax.backward)") for case in report.cases)


def test_grading_restores_the_library_after_an_error():
    class SoftmaxRaises(skeletons.Softmax):
        def backward(self, g):
            raise ValueError("oops")

    original = vars(Softmax)["backward"]
    assert "SoftmaxRaises.backward raised ValueError: oops" in (
        grade("softmax", SoftmaxRaises).cases[0].failure)
    assert vars(Softmax)["backward"] is original


@pytest.mark.parametrize("name", [name for name in BACKWARD
                                  if fast_cpu(REFERENCES[name]) is not None])
def test_registered_fast_version_passes(name):
    """Grading a fast class itself grades the library: it is not a delegation."""
    report = grade(name, fast_cpu(REFERENCES[name]))
    assert report.passed, str(report)


# ------------------------------------------------------------------- the file to complete
@pytest.mark.parametrize("name", BACKWARD)
def test_statement_shows_the_forward_not_the_answer(name, tmp_path):
    reference, skeleton = REFERENCES[name], EXERCISES[name].skeleton
    text = statement(name)
    ast.parse(text)
    assert f"class {skeleton.__name__}(skeletons.{skeleton.__name__}):" in text
    forward = textwrap.dedent(inspect.getsource(reference.forward)).rstrip()
    assert textwrap.indent(forward, " " * 8) in text
    assert f"Saved for backward: {skeleton.saved[:20]}" in text
    assert text.count("def backward(self, g):") == 1  # the one to write, not the library's
    for line in inspect.cleandoc(reference.__doc__ or "").splitlines():  # the derivation
        assert len(line) < 12 or line not in text, line
    path = tmp_path / "answer.py"
    path.write_text(text, encoding="utf-8")
    report = grade(name, load_class(str(path), skeleton.__name__))
    assert all("backward is not written yet: return" in case.failure for case in report.cases)


@pytest.mark.parametrize("name, helpers, not_shown", [
    ("cross_entropy", ["def check_and_save_targets(self, logits, target):",
                       "def reduce(self, losses):", "def __init__(self, ignore_index=-100"],
     ["def weights(self, g):"]),
    ("attention", ["self.mask_is_float = attn_mask is not None", "def dropped(self, weights):"],
     []),
    ("softmax", ["def __init__(self, axis=-1):"], []),
])
def test_statement_shows_the_helpers_forward_calls(name, helpers, not_shown):
    text = statement(name)
    assert all(helper in text for helper in helpers)
    assert not any(helper in text for helper in not_shown)


def test_grade_is_deterministic():
    first = grade("softmax", SoftmaxWithoutRowSum)
    assert str(first) == str(grade("softmax", SoftmaxWithoutRowSum))


# ------------------------------------------------------------------------- command line
def test_cli_lists_every_exercise(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, exercise in EXERCISES.items():
        assert f"{name}" in out and exercise.formula in out


def test_cli_grades_a_file(tmp_path, capsys):
    path = tmp_path / "my_softmax.py"
    path.write_text(statement("softmax"), encoding="utf-8")
    assert main(["grade", "softmax", str(path)]) == 1
    assert "not written yet" in capsys.readouterr().out

    completed = statement("softmax").replace(
        'raise NotImplementedError("return ∂L/∂x from g and what forward saved: self.y, '
        'self.axis")',
        "return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))")
    assert completed != statement("softmax")
    path.write_text(completed, encoding="utf-8")
    assert main(["grade", "softmax", str(path)]) == 0
    assert "softmax (Softmax): PASSED, 4 of 4 cases pass" in capsys.readouterr().out


def test_cli_says_which_classes_a_file_defines(tmp_path):
    path = tmp_path / "answer.py"
    path.write_text(statement("sigmoid"), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"defines no Function subclass \(of sl.Function or a "
                                         r"skeleton\) named Nope; it defines \['Sigmoid'\]"):
        main(["grade", "sigmoid", str(path), "--class", "Nope"])
    with pytest.raises(SystemExit, match=r"no Python file at .*missing\.py"):
        main(["grade", "sigmoid", str(tmp_path / "missing.py")])


def test_python_dash_m_lists_and_grades(tmp_path):
    """The module runs as ``python -m scratchlm.exercises``, with grade's exit status."""
    path = tmp_path / "my_tanh.py"
    path.write_text(statement("tanh"), encoding="utf-8")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "scratchlm.exercises", *args],
                              capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[1])

    listed = run()
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in EXERCISES)
    graded = run("grade", "tanh", str(path))
    assert graded.returncode == 1, graded.stderr
    assert "tanh (Tanh): FAILED, 0 of 3 cases pass" in graded.stdout
    completed = statement("tanh").replace(
        'raise NotImplementedError("return ∂L/∂x from g and what forward saved: self.y")',
        "return g * (1 - self.y**2)")
    assert completed != statement("tanh")
    path.write_text(completed, encoding="utf-8")
    graded = run("grade", "tanh", str(path))
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "tanh (Tanh): PASSED, 3 of 3 cases pass" in graded.stdout
