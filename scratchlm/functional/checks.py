"""Input checks shared by the functional ops; every error names the op and what it expected."""

REDUCTIONS = ("mean", "sum", "none")


def check_probability(op_name, p, name="p"):
    """A drop probability must lie in [0, 1]."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op_name}: {name}={p} is not a probability; expected 0 ≤ {name} ≤ 1")


def check_reduction(op_name, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op_name}: reduction={reduction!r}; expected 'mean', 'sum' or 'none'")


def normalize_axis(op_name, axis, shape):
    """``axis`` as a non-negative axis of an array of ``shape``."""
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op_name}: axis {axis} is out of range for an input of shape "
                         f"{shape}; expected {-ndim} ≤ axis < {ndim}")
    return axis % ndim


def integer_array(op_name, what, values, xp):
    """``values`` (an array or a list of integers) as an integer array of module ``xp``."""
    values = xp.asarray(values)
    if values.dtype.kind not in "iu":
        raise TypeError(f"{op_name}: {what} must hold integers, got dtype {values.dtype}")
    return values
