"""Anomaly mode: find the op that first made a NaN or an Inf, and the line that called it.

A NaN in a loss is usually born far from where it is seen: one ``log`` of a negative
number, one ``sqrt`` differentiated at 0, and every number downstream is NaN too. Inside
``with sl.detect_anomaly():`` every op checks what it computes:

- **forward**: after each op runs, its outputs are checked; the first op whose output holds
  a NaN or an Inf raises :class:`AnomalyError`;
- **backward**: each gradient an op's backward returns is checked; the first non-finite
  one raises, naming the input it was for.

The error names the op by its reference class (``LayerNorm`` even when a fast implementation
from :mod:`scratchlm.fast` ran), its inputs' shapes and dtypes (marking those that already
held NaN or Inf when the op got them: then the op is only where the bad values came in from
outside — data, a parameter, or a tensor computed before anomaly mode), and the line of
your code that created the op: at forward, while anomaly mode is on, every recorded op keeps
the innermost frames of the call stack that lie outside the ``scratchlm`` package.

A third check catches what the version counters cannot see. Writing into a tensor's
``.data`` (``x.data[0] = 1``), or into an op's output array, is not tracked: ``.data`` is a
plain array, as in PyTorch. If an op saved that array for its backward, the gradient would
come from values its forward never saw. So inside the context every recorded op keeps a
checksum of each array it saved, and the backward pass compares them before the op's
backward runs (:func:`saved_arrays_written`; the error is an ``InPlaceChangeError``).

Outside the context nothing of this runs: an op pays one boolean check. Inside, every op
synchronises (a GPU op waits for its result), walks the stack and hashes what it saved, so
it is for debugging, not training runs. As PyTorch's ``torch.autograd.detect_anomaly``,
except that the forward is checked too, and Inf counts as an anomaly as well as NaN.
"""

import functools
import hashlib
import linecache
import os
import sys

import numpy as np

from scratchlm import backend

#: True inside ``detect_anomaly()``; read by Function.__call__ and the backward pass.
enabled = False

#: Frames in files under this folder are the library's own, skipped when looking for the
#: line of user code that created an op.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STACK_FRAMES = 4  # user frames kept per op, innermost first


class AnomalyError(RuntimeError):
    """An op produced NaN or Inf inside ``detect_anomaly()``.

    Attributes: ``op`` (the reference op's name), ``implementation`` (the class that ran),
    ``phase`` (``"forward"`` or ``"backward"``), ``input_index`` (backward: the input whose
    gradient was not finite; forward: None), ``inputs`` (``(shape, dtype, finite)`` per
    input, None where unknown), ``filename`` and ``lineno`` (where user code created the op,
    None when it was created outside anomaly mode), ``stack`` (``(filename, lineno,
    function)`` user frames, innermost first).
    """

    def __init__(self, message, *, op, implementation, phase, input_index, inputs, stack):
        super().__init__(message)
        self.op, self.implementation, self.phase = op, implementation, phase
        self.input_index, self.inputs, self.stack = input_index, inputs, stack
        self.filename, self.lineno = stack[0][:2] if stack else (None, None)


class detect_anomaly:
    """Context manager (or decorator): inside it, the first op whose forward or backward
    produces NaN or Inf raises :class:`AnomalyError`, naming the op, forward or backward
    (and which input's gradient), its inputs' shapes and dtypes and the line of user code
    that created it::

        with sl.detect_anomaly():
            loss = model(x, y)[1]
            loss.backward()

    ``detect_anomaly(False)`` switches it off inside (nested use restores the outer mode).
    A backward run inside the context checks ops recorded outside it too, but can name no
    line for them.
    """

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self._previous = []

    def __enter__(self):
        global enabled
        self._previous.append(enabled)
        enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        global enabled
        enabled = self._previous.pop()

    def __call__(self, function):
        @functools.wraps(function)
        def wrapped(*args, **kwargs):
            with detect_anomaly(self.mode):
                return function(*args, **kwargs)
        return wrapped


def is_anomaly_enabled():
    """True inside ``detect_anomaly()``."""
    return enabled


# ----------------------------------------------------------------------- what is checked
def _nonfinite(array):
    """``"NaN"``, ``"Inf"`` or None for an array (or number); non-float data is finite."""
    kind = getattr(getattr(array, "dtype", None), "kind", None)
    if kind is None:
        if isinstance(array, (float, complex)):
            return "NaN" if array != array else ("Inf" if abs(array) == float("inf") else None)
        return None
    if kind not in "fc":
        return None
    xp = backend.get_array_module(array)
    if bool(xp.isfinite(array).all()):
        return None
    return "NaN" if bool(xp.isnan(array).any()) else "Inf"


def _user_stack(skip=2):
    """The innermost frames outside the scratchlm package: ``(filename, lineno, function)``."""
    frame, frames = sys._getframe(skip), []
    while frame is not None and len(frames) < _STACK_FRAMES:
        code = frame.f_code
        if not code.co_filename.startswith(_PACKAGE_DIR):
            frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return frames


def reference_class(fn):
    """The op's reference class: the first class in its MRO defined outside the fast layer
    (a fast implementation, which runs in the reference's place, subclasses the reference
    and lives in ``scratchlm/fast``)."""
    for cls in type(fn).__mro__:
        if not cls.__module__.startswith("scratchlm.fast"):
            return cls
    return type(fn)


def op_name(fn):
    """``"LayerNorm"``, or ``"LayerNorm (fast implementation LayerNormRowBlocks ran)"``."""
    reference = reference_class(fn)
    if reference is type(fn):
        return reference.__name__
    return f"{reference.__name__} (fast implementation {type(fn).__name__} ran)"


def _describe(array):
    """``(shape, dtype, problem)`` of one input array (or number): problem is "NaN", "Inf"
    or None."""
    shape = tuple(getattr(array, "shape", ()))
    dtype = getattr(array, "dtype", type(array).__name__)
    return shape, str(dtype), _nonfinite(array)


def _format_inputs(inputs):
    parts = []
    for i, described in enumerate(inputs):
        if described is None:
            parts.append(f"    input {i}: (needs no gradient; not kept after forward)")
            continue
        shape, dtype, problem = described
        note = f"  <- already contained {problem} when the op got it" if problem else ""
        parts.append(f"    input {i}: shape {shape}, dtype {dtype}{note}")
    return "\n".join(parts) if parts else "    (no inputs)"


def _format_stack(stack):
    if not stack:
        return ("  created outside detect_anomaly(), so no line was recorded; run the "
                "forward inside the context too to see where")
    lines = []
    for k, (filename, lineno, function) in enumerate(stack):
        source = linecache.getline(filename, lineno).strip()
        head = "  created at" if k == 0 else "    called from"
        lines.append(f"{head} {filename}:{lineno} in {function}" + (f": {source}" if source
                                                                      else ""))
    return "\n".join(lines)


# -------------------------------------------------------------------------- the checks
def check_forward(fn, inputs, outputs, recorded):
    """After ``fn.forward`` on the arrays ``inputs``: for a recorded op, remember where user
    code created it and a checksum of every array it saved (for the backward's checks); raise
    if an output holds NaN or Inf."""
    stack = _user_stack()
    if recorded:
        fn._anomaly_stack = stack
        fn._anomaly_inputs = [_describe(x) for x in inputs]
        fn._anomaly_saved = _saved_checksums(fn)
    results = outputs if isinstance(outputs, tuple) else (outputs,)
    bad = [(i, p) for i, p in enumerate(map(_nonfinite, results)) if p]
    if not bad:
        return
    described = [_describe(x) for x in inputs]
    which = ", ".join(f"output {i}: {p}" for i, p in bad) if len(results) > 1 else bad[0][1]
    name = op_name(fn)
    cause = ("its inputs were all finite, so this op made the first bad value"
             if not any(d[2] for d in described) else
             "an input already held NaN/Inf (marked below): it came into the graph from "
             "outside anomaly mode's view (data, a parameter, or a tensor computed before "
             "detect_anomaly), and this is the first op to use it")
    message = (f"detect_anomaly: the forward of {name} produced {which}; {cause}.\n"
               f"  its inputs:\n{_format_inputs(described)}\n{_format_stack(stack)}")
    raise AnomalyError(message, op=reference_class(fn).__name__,
                       implementation=type(fn).__name__, phase="forward", input_index=None,
                       inputs=described, stack=stack)


def check_backward(fn, grad_outputs, grad_inputs):
    """After ``fn.backward``: raise if a returned gradient holds NaN or Inf."""
    for i, g in enumerate(grad_inputs):
        if g is None:
            continue
        problem = _nonfinite(g)
        if problem is None:
            continue
        stack = fn.__dict__.get("_anomaly_stack", [])
        described = fn.__dict__.get("_anomaly_inputs")
        if described is None:  # recorded outside anomaly mode: only the tensors it kept
            described = [None if t is None else (t.shape, str(t.dtype), None)
                         for t in fn.inputs]
        incoming = [p for p in map(_nonfinite, grad_outputs) if p]
        cause = (f"the gradient arriving at its output already contained {incoming[0]} "
                 "(an op further down the graph, or the grad given to backward(), made it)"
                 if incoming else
                 "the gradient arriving at its output was finite, so this backward made the "
                 "first bad value")
        shape = tuple(getattr(g, "shape", ()))
        name = op_name(fn)
        message = (f"detect_anomaly: the backward of {name} returned {problem} in the "
                   f"gradient for its input {i} (gradient shape {shape}); {cause}.\n"
                   f"  its inputs at forward:\n{_format_inputs(described)}\n"
                   f"{_format_stack(stack)}")
        raise AnomalyError(message, op=reference_class(fn).__name__,
                           implementation=type(fn).__name__, phase="backward",
                           input_index=i, inputs=described, stack=stack)


# ------------------------------------------------------------- writes into saved arrays
def _saved_arrays(fn):
    """``{name: array}`` for every array the op keeps as an attribute (or in a tuple or
    list attribute, as ``blocks[2]``): what its forward saved for backward."""
    arrays = {}
    for name, value in vars(fn).items():
        if name.startswith("_anomaly"):
            continue
        items = enumerate(value) if isinstance(value, (tuple, list)) else [(None, value)]
        for i, item in items:
            if isinstance(item, np.ndarray) or backend.is_gpu_array(item):
                arrays[f"self.{name}" if i is None else f"self.{name}[{i}]"] = item
    return arrays


def _checksum(array):
    host = np.ascontiguousarray(backend.to_numpy(array))
    return hashlib.blake2b(host.view(np.uint8).reshape(-1), digest_size=16).digest()


def _saved_checksums(fn):
    return {name: _checksum(array) for name, array in _saved_arrays(fn).items()}


def saved_arrays_written(fn):
    """The names (``self.x``) of the arrays ``fn`` saved at forward whose contents changed
    since (compared by checksum); empty for an op recorded outside anomaly mode."""
    then = vars(fn).get("_anomaly_saved")
    if not then:
        return []
    now = _saved_arrays(fn)
    return [name for name, checksum in then.items()
            if name in now and _checksum(now[name]) != checksum]
