"""The gradient-check exercises: every answer passes, every planted bug fails, and the report
says where and by how much."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchlm.exercises import EXERCISES, grade, skeletons, solutions
from scratchlm.exercises.__main__ import main, statement


def solution_of(name):
    return getattr(solutions, EXERCISES[name].skeleton.__name__)


# ------------------------------------------------------------------ planted wrong backwards
class MulSwapsTheGradients(solutions.Mul):
    def backward(self, g):  # ∂y/∂a is b, not a
        return g * self.a, g * self.b


class TanhForgotTheSquare(solutions.Tanh):
    def backward(self, g):
        return g * (1.0 - self.y)


class SigmoidForgotOneMinusY(solutions.Sigmoid):
    def backward(self, g):
        return g * self.y


class GELUDroppedTanhTerm(solutions.GELUTanh):
    def backward(self, g):
        return g * 0.5 * (1.0 + self.t)


class MatMulTransposesBatchAxes(solutions.MatMul):
    def backward(self, g):  # .T reverses every axis, not just the last two
        return g @ self.b.T, self.a.T @ g


class EmbeddingDropsRepeatedIds(solutions.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape)
        grad[self.ids] += g  # buffered: a repeated id keeps one row, not the sum
        return None, grad


class SoftmaxWithoutRowSum(solutions.Softmax):
    def backward(self, g):
        return self.y * g


class LogSoftmaxUsesLogProbs(solutions.LogSoftmax):
    def backward(self, g):
        return g - self.y * g.sum(axis=self.axis, keepdims=True)


class CrossEntropySumsInsteadOfMean(solutions.CrossEntropy):
    def backward(self, g):
        grad = self.probs.copy()
        grad[self.rows, self.targets] -= 1.0
        grad *= (self.counted * g)[:, None]
        return grad.reshape(self.logits_shape), None


class LayerNormTreatsStatisticsAsConstants(solutions.LayerNorm):
    def backward(self, g):
        features = g.shape[-1]
        return (g * self.weight * self.rstd,
                (g * self.norm).reshape(-1, features).sum(axis=0),
                g.reshape(-1, features).sum(axis=0))


class AttentionForgotScale(solutions.ScaledDotProductAttention):
    def backward(self, g):
        grad_q, grad_k, grad_v = super().backward(g)
        return grad_q / self.scale, grad_k / self.scale, grad_v


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
}


def test_every_exercise_has_a_planted_bug():
    assert set(PLANTED_BUGS) == set(EXERCISES)


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_solution_passes(name):
    report = grade(name, solution_of(name))
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


@pytest.mark.parametrize("name", EXERCISES)
def test_skeleton_fails_until_backward_is_written(name):
    report = grade(name, EXERCISES[name].skeleton)
    assert not any(case.passed for case in report.cases)
    assert all("backward is not written yet: return" in case.failure for case in report.cases)


@pytest.mark.parametrize("name", EXERCISES)
def test_solution_keeps_the_skeleton_forward(name):
    assert issubclass(solution_of(name), EXERCISES[name].skeleton)
    assert "forward" not in vars(solution_of(name))


# ----------------------------------------------------------------- what else the grader sees
class SoftmaxInPlace(solutions.Softmax):
    def backward(self, g):
        g -= (g * self.y).sum(axis=self.axis, keepdims=True)
        g *= self.y
        return g


class SigmoidSlightlyOff(solutions.Sigmoid):
    """Within gradcheck's tolerance of central differences, but not the exact derivative."""

    def backward(self, g):
        return super().backward(g) * (1 + 1e-5)


class SoftmaxWrongForward(solutions.Softmax):
    def forward(self, x):
        self.y = np.exp(x) / np.exp(x).sum()
        return self.y


class LayerNormMissingGradients(solutions.LayerNorm):
    def backward(self, g):
        return super().backward(g)[0]


class LayerNormUnsummedWeightGradient(solutions.LayerNorm):
    def backward(self, g):
        grad_x, _, grad_bias = super().backward(g)
        return grad_x, (g * self.norm)[..., :-1], grad_bias


class EmbeddingGradientForIds(solutions.Embedding):
    def backward(self, g):
        return super().backward(g)[1]


class MulSumsTheWrongAxis(solutions.Mul):
    def backward(self, g):
        return g * self.b, (g * self.a).sum(axis=-1)


class SigmoidTakingAConfig(solutions.Sigmoid):
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


def test_embedding_solution_accumulates_repeated_ids():
    """A hand-computed example: id 2 appears three times, so its row gets three rows of g."""
    op = solutions.Embedding()
    op.forward(np.array([2, 0, 2, 2]), np.zeros((3, 2)))
    g = np.arange(8.0).reshape(4, 2)
    _, grad = op.backward(g)
    np.testing.assert_array_equal(grad, [[2, 3], [0, 0], [0 + 4 + 6, 1 + 5 + 7]])


def test_grade_rejects_bad_arguments():
    with pytest.raises(KeyError, match="no exercise named 'softmx'; the exercises are"):
        grade("softmx", solutions.Softmax)
    with pytest.raises(TypeError, match="expected a subclass of sl.Function"):
        grade("softmax", solutions.Softmax())
    with pytest.raises(TypeError, match="expected a subclass of sl.Function"):
        grade("softmax", np.exp)


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
        'raise NotImplementedError("return ∂L/∂x from g and self.y")',
        "return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))")
    path.write_text(completed, encoding="utf-8")
    assert main(["grade", "softmax", str(path)]) == 0
    assert "softmax (Softmax): PASSED, 4 of 4 cases pass" in capsys.readouterr().out


def test_cli_says_which_classes_a_file_defines(tmp_path):
    path = tmp_path / "answer.py"
    path.write_text(statement("sigmoid"), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"defines no sl.Function subclass named Nope; it "
                                         r"defines \['Sigmoid'\]"):
        main(["grade", "sigmoid", str(path), "--class", "Nope"])
    with pytest.raises(SystemExit, match="no file"):
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
    path.write_text(statement("tanh").replace(
        'raise NotImplementedError("return ∂L/∂x from g = ∂L/∂y and self.y")',
        "return g * (1 - self.y**2)"), encoding="utf-8")
    graded = run("grade", "tanh", str(path))
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "tanh (Tanh): PASSED, 3 of 3 cases pass" in graded.stdout
