"""Fused CUDA kernels for the hottest GPU ops: tanh-GELU, layer norm, softmax (with the
softmax inside cross-entropy and inside attention) and the Adam/AdamW update.

The reference ops (``scratchlm/functional``, ``scratchlm/optim``) are what the docstrings
derive and what these kernels are tested equal to (``tests/test_gpu_kernels.py`` runs both
on CuPy, fast mode on and off); :mod:`scratchlm.fast.cuda` registers the ops that call
them. A chain of CuPy
array expressions launches one kernel per operation and each reads and writes the whole
array, so the ops here, which are memory-bound, spend their time moving data; a fused
kernel reads its inputs once and writes its outputs once.

* Elementwise ops (GELU, the Adam update) are ``cupy.ElementwiseKernel``s: the operation
  string is the loop body for one element, ``T`` is the arrays' dtype (float32 or float64).
* Row ops (softmax, layer norm, over the last axis) are ``cupy.RawKernel``s with one thread
  block per row: the block's threads stride over the row's C entries, and the row's sums and
  maximum are reduced first inside each warp (``__shfl_xor_sync``), then across the block's
  warps through 32 slots of shared memory. The source is compiled once per dtype, with
  ``typedef float T;`` or ``typedef double T;`` in front.

Each wrapper takes CuPy arrays, and the ops call them only when :func:`fusable` says so.
Only :mod:`scratchlm.backend` touches CuPy itself; the kernels are built through it.
"""

import functools

import numpy as np

from scratchlm import backend

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_MAX_THREADS = 1024  # per block: CUDA's limit

#: NVRTC options of every kernel. No multiply-add contraction: each a·b + c rounds twice, as
#: in the reference's separate array operations, so the elementwise kernels should round as
#: the reference does (the row kernels still sum in another order). These ops are
#: memory-bound, so the fused multiply-add would save no time.
OPTIONS = ("--fmad=false",)


def fusable(*arrays):
    """True when the fused kernels can handle ``arrays``: they are all non-empty CuPy arrays
    of one dtype, float32 or float64 (None among the others, an absent weight or bias, is
    allowed). NumPy arrays never are."""
    if not backend.is_gpu_array(arrays[0]):
        return False
    dtype = arrays[0].dtype
    return (dtype in _CTYPES and arrays[0].size > 0
            and all(a is None or (backend.is_gpu_array(a) and a.dtype == dtype)
                    for a in arrays[1:]))


def fusable_rows(x, *others):
    """:func:`fusable`, and ``x`` has a last axis of rows for the one-block-per-row kernels."""
    return (x.ndim >= 1 and fusable(x, *others)
            and x.size // x.shape[-1] < 2 ** 31 - 1 and x.shape[-1] < 2 ** 31 - 1)


# ------------------------------------------------------------------------------ elementwise
def _literal(value):
    """A Python float as a C literal of type T (rounded to T as NumPy rounds it)."""
    return f"(T){float(value)!r}"


_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_GELU_CUBIC = 0.044715

_GELU_TANH_FORWARD = dict(
    in_params="T x",
    out_params="T y, T h",
    operation=f"""
        h = (tanh((x * x * {_literal(_SQRT_2_OVER_PI * _GELU_CUBIC)}
                   + {_literal(_SQRT_2_OVER_PI)}) * x) + (T)1) * (T)0.5;
        y = x * h;
    """,
    name="scratchlm_gelu_tanh_forward", options=OPTIONS)

_GELU_TANH_BACKWARD = dict(
    in_params="T grad, T x, T h",
    out_params="T dx",
    operation=f"""
        const T w = (x * x * {_literal(6 * _SQRT_2_OVER_PI * _GELU_CUBIC)}
                     + {_literal(2 * _SQRT_2_OVER_PI)}) * x;
        dx = ((w * ((T)1 - h) + (T)1) * h) * grad;
    """,
    name="scratchlm_gelu_tanh_backward", options=OPTIONS)


def gelu_tanh_forward(x):
    """``(y, h)`` with, per element,
        h = ½(1 + tanh(√(2/π)(x + 0.044715x³))),   y = x h
    (``GELUTanh.forward``; u is computed as (x²·√(2/π)·0.044715 + √(2/π))·x, in
    the reference's order). Returns new arrays shaped like ``x``."""
    return backend.elementwise_kernel(**_GELU_TANH_FORWARD)(x)


def gelu_tanh_backward(grad, x, h):
    """dx = h (1 + w (1 − h)) · grad,  w = 2x u' = (6·√(2/π)·0.044715 x² + 2√(2/π)) x, per
    element, from the forward's cached h (``GELUTanh.backward``)."""
    return backend.elementwise_kernel(**_GELU_TANH_BACKWARD)(grad, x, h)


_ADAM_UPDATE = dict(
    in_params=("T grad, T decay, T l2, T one_minus_beta1, T beta2, T one_minus_beta2, "
               "T eps_scaled, T step_scaled"),
    out_params="T param, T exp_avg, T exp_avg_sq",
    operation="""
        T g = grad;
        if (l2 != (T)0) g = param * l2 + g;
        param *= decay;
        exp_avg += (g - exp_avg) * one_minus_beta1;
        exp_avg_sq = exp_avg_sq * beta2 + g * one_minus_beta2 * g;
        param += exp_avg / (sqrt(exp_avg_sq) + eps_scaled) * step_scaled;
    """,
    name="scratchlm_adam_update", options=OPTIONS)


def adam_update(param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay,
                decoupled, step):
    """One Adam/AdamW step on ``param``, ``exp_avg`` (m) and ``exp_avg_sq`` (v), in place,
    per element (``optim.adam.Adam.update_parameter``, in its order of operations):

        g ← g + λθ                   Adam with λ ≠ 0        (l2 = λ, else 0)
        θ ← θ(1 − ηλ)                AdamW                  (decay = 1 − ηλ, else 1)
        m ← m + (1 − β₁)(g − m)
        v ← β₂v + (1 − β₂)g²
        θ ← θ + m / (√v + ε√(1 − β₂ᵗ)) · (−η√(1 − β₂ᵗ)/(1 − β₁ᵗ))

    The scalars go in as NumPy scalars of the arrays' dtype, rounded as the reference's
    Python floats are when they meet a float32 array."""
    scalar = param.dtype.type
    decay = 1 - lr * weight_decay if decoupled and weight_decay != 0 else 1.0
    l2 = weight_decay if not decoupled else 0.0
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    backend.elementwise_kernel(**_ADAM_UPDATE)(
        grad, scalar(decay), scalar(l2), scalar(1 - beta1), scalar(beta2), scalar(1 - beta2),
        scalar(eps * bias_correction2_sqrt),
        scalar(-lr / (1 - beta1 ** step) * bias_correction2_sqrt),
        param, exp_avg, exp_avg_sq)


# ------------------------------------------------------------------------------------ rows
# One thread block per row of C entries. Every helper must be reached by all the block's
# threads (they hold __syncthreads) and returns the block's result to every thread; the
# final __syncthreads lets the next helper reuse `shared` at once. The xor butterfly gives
# every lane the same value, since a + b == b + a exactly in floating point. Every row kernel
# takes the row length `const int cols` as its last argument (_launch appends it), and its
# grid has one block per row.
_ROW_HELPERS = r"""
__device__ __forceinline__ T warp_sum(T value) {
    for (int offset = 16; offset > 0; offset /= 2)
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}

__device__ __forceinline__ T warp_max(T value) {
    for (int offset = 16; offset > 0; offset /= 2)
        value = fmax(value, __shfl_xor_sync(0xffffffffu, value, offset));
    return value;
}

__device__ T block_sum(T value, T* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int warps = blockDim.x / 32;
    value = warp_sum(value);
    if (lane == 0) shared[warp] = value;
    __syncthreads();
    value = warp_sum(lane < warps ? shared[lane] : (T)0);
    __syncthreads();
    return value;
}

__device__ T block_max(T value, T* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int warps = blockDim.x / 32;
    value = warp_max(value);
    if (lane == 0) shared[warp] = value;
    __syncthreads();
    value = warp_max(lane < warps ? shared[lane] : shared[0]);
    __syncthreads();
    return value;
}
"""

_SOFTMAX_ROWS = _ROW_HELPERS + r"""
extern "C" __global__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y,
                                        T* __restrict__ row_max, T* __restrict__ row_log_sum,
                                        const int cols) {
    __shared__ T shared[32];
    const long long start = (long long)blockIdx.x * cols;
    x += start;
    y += start;
    T m = x[0];
    for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmax(m, x[j]);
    m = block_max(m, shared);
    T sum = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const T e = exp(x[j] - m);
        y[j] = e;
        sum += e;
    }
    sum = block_sum(sum, shared);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) y[j] /= sum;
    if (threadIdx.x == 0) {
        row_max[blockIdx.x] = m;
        row_log_sum[blockIdx.x] = log(sum);
    }
}
"""

_SOFTMAX_BACKWARD_ROWS = _ROW_HELPERS + r"""
extern "C" __global__ void softmax_backward_rows(const T* __restrict__ grad,
                                                 const T* __restrict__ y,
                                                 T* __restrict__ dx, const T scale,
                                                 const int cols) {
    __shared__ T shared[32];
    const long long start = (long long)blockIdx.x * cols;
    grad += start;
    y += start;
    dx += start;
    T dot = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dot += grad[j] * y[j];
    dot = block_sum(dot, shared);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dx[j] = (grad[j] - dot) * y[j] * scale;
}
"""

# Attention's weights from its scores S (rows of Tk keys): P = softmax(scale·S) with the
# causal mask (query i, row r of a (…, Tq, Tk) array with i = r mod Tq, sees keys j ≤ i,
# and P = 0 beyond) applied inside the same pass, so that no masked copy of S is written.
_ATTENTION_SOFTMAX_ROWS = _ROW_HELPERS + r"""
extern "C" __global__ void attention_softmax_rows(const T* __restrict__ scores,
                                                  T* __restrict__ weights, const T scale,
                                                  const int queries, const int causal,
                                                  const int cols) {
    __shared__ T shared[32];
    const long long start = (long long)blockIdx.x * cols;
    scores += start;
    weights += start;
    const int query = blockIdx.x % queries;
    const int visible = causal && query + 1 < cols ? query + 1 : cols;
    T m = scores[0] * scale;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) m = fmax(m, scores[j] * scale);
    m = block_max(m, shared);
    T sum = 0;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) {
        const T e = exp(scores[j] * scale - m);
        weights[j] = e;
        sum += e;
    }
    sum = block_sum(sum, shared);
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        weights[j] = j < visible ? weights[j] / sum : (T)0;
}
"""

_LAYER_NORM_ROWS = _ROW_HELPERS + r"""
extern "C" __global__ void layer_norm_rows(const T* __restrict__ x, const T* __restrict__ weight,
                                           const T* __restrict__ bias, T* __restrict__ y,
                                           T* __restrict__ norm, T* __restrict__ rstd,
                                           const T eps, const int cols) {
    __shared__ T shared[32];
    const long long start = (long long)blockIdx.x * cols;
    x += start;
    y += start;
    norm += start;
    T sum = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) sum += x[j];
    const T mean = block_sum(sum, shared) / (T)cols;
    T squares = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const T centered = x[j] - mean;
        squares += centered * centered;
    }
    const T r = (T)1 / sqrt(block_sum(squares, shared) / (T)cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const T normed = (x[j] - mean) * r;
        norm[j] = normed;
        y[j] = normed * weight[j] + bias[j];
    }
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}
"""

_LAYER_NORM_BACKWARD_ROWS = _ROW_HELPERS + r"""
extern "C" __global__ void layer_norm_backward_rows(const T* __restrict__ grad,
                                                    const T* __restrict__ norm,
                                                    const T* __restrict__ weight,
                                                    const T* __restrict__ rstd,
                                                    T* __restrict__ dx, const int cols) {
    __shared__ T shared[32];
    const long long start = (long long)blockIdx.x * cols;
    grad += start;
    norm += start;
    dx += start;
    T sum_dnorm = 0, sum_dnorm_norm = 0;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const T dnorm = grad[j] * weight[j];
        sum_dnorm += dnorm;
        sum_dnorm_norm += dnorm * norm[j];
    }
    const T mean_dnorm = block_sum(sum_dnorm, shared) / (T)cols;
    const T mean_dnorm_norm = block_sum(sum_dnorm_norm, shared) / (T)cols;
    const T r = rstd[blockIdx.x];
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        dx[j] = (grad[j] * weight[j] - mean_dnorm - norm[j] * mean_dnorm_norm) * r;
}
"""

#: kernel name -> CUDA source (before the ``typedef ... T;`` line), for the row kernels
ROW_KERNELS = {"softmax_rows": _SOFTMAX_ROWS,
               "softmax_backward_rows": _SOFTMAX_BACKWARD_ROWS,
               "attention_softmax_rows": _ATTENTION_SOFTMAX_ROWS,
               "layer_norm_rows": _LAYER_NORM_ROWS,
               "layer_norm_backward_rows": _LAYER_NORM_BACKWARD_ROWS}


@functools.cache
def row_kernel_source(name, dtype):
    """The full CUDA source of row kernel ``name`` for arrays of ``dtype``."""
    return f"typedef {_CTYPES[np.dtype(dtype)]} T;\n" + ROW_KERNELS[name]


def threads_per_row(cols):
    """Threads of the block that handles one row of ``cols`` entries: one per entry,
    rounded up to whole warps of 32, at most 1024 (then each thread takes several)."""
    return min(_MAX_THREADS, -(-cols // 32) * 32)


def _launch(name, rows, cols, dtype, args):
    kernel = backend.raw_kernel(row_kernel_source(name, dtype), name, OPTIONS)
    kernel((rows,), (threads_per_row(cols),), args + (np.int32(cols),))


def _as_rows(x):
    """``x`` as a C-contiguous (rows, C) array (a raw kernel ignores strides)."""
    xp = backend.get_array_module(x)
    return xp.ascontiguousarray(x).reshape(-1, x.shape[-1])


def softmax_rows(x):
    """``(y, row_max, row_log_sum)`` over the last axis of ``x``, per row of C entries:

        m = max_c x_c,   s = Σ_c e^(x_c − m),   y_c = e^(x_c − m) / s,

    with m and log s as arrays of shape x.shape[:-1] (cross-entropy's loss needs them)."""
    xp = backend.get_array_module(x)
    rows_x = _as_rows(x)
    rows, cols = rows_x.shape
    y = xp.empty_like(rows_x)
    row_max = xp.empty(rows, dtype=x.dtype)
    row_log_sum = xp.empty(rows, dtype=x.dtype)
    _launch("softmax_rows", rows, cols, x.dtype, (rows_x, y, row_max, row_log_sum))
    batch = x.shape[:-1]
    return y.reshape(x.shape), row_max.reshape(batch), row_log_sum.reshape(batch)


def softmax_backward_rows(grad, y, scale=1.0):
    """dx_c = y_c (g_c − Σ_k g_k y_k) · scale over the last axis, per row
    (``Softmax.backward``; attention passes its 1/√d as ``scale``)."""
    xp = backend.get_array_module(y)
    rows_g, rows_y = _as_rows(grad), _as_rows(y)
    rows, cols = rows_y.shape
    dx = xp.empty_like(rows_y)
    _launch("softmax_backward_rows", rows, cols, y.dtype,
            (rows_g, rows_y, dx, y.dtype.type(scale)))
    return dx.reshape(y.shape)


def attention_softmax_rows(scores, scale, causal):
    """Attention's weights P from its scores S (…, Tq, Tk), per row of Tk keys:

        P_ij = e^(scale·S_ij − m) / Σ_{k visible} e^(scale·S_ik − m)   for visible keys j,
        P_ij = 0 otherwise,

    where every key is visible, or, when ``causal``, keys j ≤ i (m is the row's maximum over
    its visible keys). ``ScaledDotProductAttention.forward`` without a mask or dropout."""
    xp = backend.get_array_module(scores)
    rows_s = _as_rows(scores)
    rows, cols = rows_s.shape
    weights = xp.empty_like(rows_s)
    _launch("attention_softmax_rows", rows, cols, scores.dtype,
            (rows_s, weights, scores.dtype.type(scale), np.int32(scores.shape[-2]),
             np.int32(bool(causal))))
    return weights.reshape(scores.shape)


def _weight_or(value, param, cols, dtype, xp):
    return xp.ascontiguousarray(param) if param is not None else xp.full(cols, value, dtype)


def layer_norm_rows(x, weight, bias, eps):
    """``(y, norm, rstd)`` over the last axis of ``x``, per row of C entries:

        μ = Σ_c x_c / C,   r = 1/√(Σ_c (x_c − μ)² / C + ε),   n_c = (x_c − μ) r,
        y_c = n_c w_c + b_c

    (w = 1, b = 0 where ``weight`` / ``bias`` is None); ``norm`` is shaped like ``x`` and
    ``rstd`` like x.shape[:-1] + (1,), as ``normalization.LayerNorm.forward`` saves them."""
    xp = backend.get_array_module(x)
    rows_x = _as_rows(x)
    rows, cols = rows_x.shape
    weight = _weight_or(1, weight, cols, x.dtype, xp)
    bias = _weight_or(0, bias, cols, x.dtype, xp)
    y, norm = xp.empty_like(rows_x), xp.empty_like(rows_x)
    rstd = xp.empty((rows, 1), dtype=x.dtype)
    _launch("layer_norm_rows", rows, cols, x.dtype,
            (rows_x, weight, bias, y, norm, rstd, x.dtype.type(eps)))
    return y.reshape(x.shape), norm.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward_rows(grad, norm, weight, rstd):
    """∂L/∂x = r (dn − mean(dn) − n · mean(dn ⊙ n)),  dn = g ⊙ w, per row
    (``normalization.LayerNorm.backward``; w = 1 where ``weight`` is None)."""
    xp = backend.get_array_module(norm)
    rows_g, rows_n = _as_rows(grad), _as_rows(norm)
    rows, cols = rows_n.shape
    weight = _weight_or(1, weight, cols, norm.dtype, xp)
    dx = xp.empty_like(rows_n)
    _launch("layer_norm_backward_rows", rows, cols, norm.dtype,
            (rows_g, rows_n, weight, xp.ascontiguousarray(rstd).reshape(-1), dx))
    return dx.reshape(norm.shape)
