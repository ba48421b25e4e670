"""The cases of a backward exercise (track 2) drawn from a seed, with the answer key's
results: the library op's output and gradients for a random cotangent, or those a release
stored (:mod:`scratchlm.exercises.expected`). Computed by the grader's process, before any
untrusted code runs; the grading child gets only the inputs and the cotangent.
"""

from dataclasses import dataclass

import numpy as np

import scratchlm as sl
from scratchlm.exercises.catalog import Case


@dataclass(frozen=True)
class PreparedCase:
    """One case's inputs and the library's answers to them: what a student's class is
    graded against."""
    case: Case
    label: str
    inputs: list
    #: per input: whether it is a float input (gets a gradient)
    is_float: list
    expected_y: np.ndarray
    #: the library's gradient of each input (None for integer ones) for ``cotangent``
    expected_grads: list
    cotangent: np.ndarray


def prepare_cases(exercise, seed=0, stored=None):
    """Every case of ``exercise``: its inputs (float64 normals drawn from ``seed``), the
    library's output and gradients for a random cotangent (drawn next). Call it before
    anything untrusted runs: the answers come from the library's reference classes (or,
    given ``stored``, a :class:`~scratchlm.exercises.expected.Stored`, from its file)."""
    rng = np.random.default_rng(seed)
    prepared = []
    with sl.use_fast(False):  # the library's results come from the reference formulas
        for index, case in enumerate(exercise.cases):
            inputs = [rng.standard_normal(spec) if isinstance(spec, tuple) else spec
                      for spec in case.inputs]
            is_float = [x is not None and x.dtype.kind == "f" for x in inputs]
            expected_y, expected_grads, cotangent = _library_result(exercise, case, inputs, rng)
            if stored is not None:
                answer = stored.expected(index, _label(exercise, case), inputs)
                expected_y, expected_grads = answer["y"], answer["grads"]
            prepared.append(PreparedCase(case, _label(exercise, case), inputs, is_float,
                                         expected_y, expected_grads, cotangent))
    return prepared


def _library_result(exercise, case, inputs, rng):
    """The library op's output, its gradients for a random cotangent, and that cotangent."""
    leaves = [sl.tensor(x, requires_grad=True) if x is not None and x.dtype.kind == "f" else x
              for x in inputs]
    y = exercise.reference(*leaves, **case.config)
    cotangent = rng.standard_normal(y.shape)
    y.backward(cotangent)
    grads = [leaf.grad if isinstance(leaf, sl.Tensor) else None for leaf in leaves]
    return y.data, grads, cotangent


def _label(exercise, case):
    parts = [f"{name} {spec}" if isinstance(spec, tuple) else f"{name} {spec.tolist()}"
             for name, spec in zip(exercise.input_names, case.inputs) if spec is not None]
    parts += [f"{key}={value!r}" for key, value in case.config.items()]
    return ", ".join(parts)
