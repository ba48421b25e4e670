"""Fast versions of the optimizers' update rules: the same arithmetic per element, in place.

On the CPU the update of a big parameter takes ~13 passes over it (Adam); run one after
another over whole arrays, every pass streams the parameter, its gradient and its state from
memory. Here the update runs with ufuncs writing into ``out=`` scratch arrays (no
temporaries), in pieces of :data:`CHUNK_SIZE` elements, so that a piece of each array stays
in the CPU's cache through all the passes, and the pieces are shared out among threads
(:mod:`scratchlm.fast.threads`). Every element sees the same operations as in the reference,
so the results are the same to rounding. On the GPU, Adam's whole update is one fused
elementwise kernel per parameter (:func:`scratchlm.fast.cuda_kernels.adam_update`).

Each fast rule is a function registered for the reference rule it replaces, the method
``Adam.update_parameter`` or ``SGD.update_parameter`` (AdamW inherits Adam's): it takes the
optimizer as its first argument, like the method, and ``Optimizer.step`` calls it with the
arguments the method would get.
"""

import weakref

import numpy as np

from scratchlm.fast import cuda_kernels, threads
from scratchlm.fast.registry import implements
from scratchlm.optim.adam import Adam
from scratchlm.optim.sgd import SGD

#: Elements per piece of the in-place update on the CPU: 2¹⁷ float32 = 512 KiB per array
#: (bench/README.md: the piece sizes measured).
CHUNK_SIZE = 1 << 17


def chunks(*arrays):
    """Matching 1-D pieces of equally shaped arrays (views, so writes reach the arrays).
    Arrays that are not C-contiguous cannot be cut into flat views: they come whole."""
    if not all(a.flags.c_contiguous for a in arrays):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]
    for start in range(0, flat[0].size, CHUNK_SIZE):
        yield tuple(f[start:start + CHUNK_SIZE] for f in flat)


#: optimizer -> {(dtype, thread slot): two scratch arrays}, reused every step and dropped
#: with the optimizer
_scratch_arrays = weakref.WeakKeyDictionary()


def for_each_piece(optimizer, update, *arrays):
    """Call ``update(work, tmp, *pieces)`` on matching pieces of ``arrays``, with two scratch
    arrays shaped like the pieces, the pieces shared out among threads (each thread with
    scratch arrays of its own, kept for this optimizer and reused every step)."""
    scratch = _scratch_arrays.setdefault(optimizer, {})

    def run(piece, slot):
        size, dtype = piece[0].size, piece[0].dtype
        buffers = scratch.get((dtype, slot))
        if buffers is None or buffers[0].size < size:
            buffers = scratch[(dtype, slot)] = (np.empty(size, dtype), np.empty(size, dtype))
        update(*(b[:size].reshape(piece[0].shape) for b in buffers), *piece)
    threads.run_shared(run, chunks(*arrays))


@implements(Adam.update_parameter, "cpu")
def adam_in_pieces(optimizer, param, grad, state, group):
    """:meth:`Adam.update_parameter` in place, piece by piece on the threads; the bias
    correction of v is folded into two scalars (one division pass fewer):
        θ ← θ + m / (√v + ε√(1 − β₂ᵗ)) · (−η√(1 − β₂ᵗ)/(1 − β₁ᵗ))."""
    lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
    state["step"] += 1
    bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
    eps_scaled = group["eps"] * bias_correction2_sqrt
    step_scaled = -lr / (1 - beta1 ** state["step"]) * bias_correction2_sqrt

    def update(work, tmp, p, g, m, v):
        if optimizer.decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        elif weight_decay:
            np.multiply(p, weight_decay, out=work)
            work += g
            g = work
        np.subtract(g, m, out=tmp)
        tmp *= 1 - beta1
        m += tmp
        v *= beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps_scaled
        np.divide(m, tmp, out=tmp)
        tmp *= step_scaled
        p += tmp
    for_each_piece(optimizer, update, param, grad, state["exp_avg"], state["exp_avg_sq"])


@implements(Adam.update_parameter, "cuda")
def adam_kernel(optimizer, param, grad, state, group):
    """:meth:`Adam.update_parameter` as one fused CUDA kernel per parameter (the reference
    where the arrays cannot be fused)."""
    if not cuda_kernels.fusable(param, grad, state["exp_avg"], state["exp_avg_sq"]):
        return optimizer.update_parameter(param, grad, state, group)
    state["step"] += 1
    beta1, beta2 = group["betas"]
    cuda_kernels.adam_update(param, grad, state["exp_avg"], state["exp_avg_sq"],
                             lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                             weight_decay=group["weight_decay"],
                             decoupled=optimizer.decoupled_weight_decay, step=state["step"])


@implements(SGD.update_parameter, "cpu")
def sgd_in_pieces(optimizer, param, grad, state, group):
    """:meth:`SGD.update_parameter` in place, piece by piece on the threads."""
    lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
    first_step = momentum != 0 and "momentum_buffer" not in state
    if first_step:
        state["momentum_buffer"] = np.empty_like(param)
    buffers = (state["momentum_buffer"],) if momentum != 0 else ()

    def update(work, tmp, p, g, *buffer):
        if weight_decay != 0:
            np.multiply(p, weight_decay, out=work)
            work += g
            g = work
        if momentum != 0:
            (b,) = buffer
            if first_step:
                b[...] = g
            else:
                b *= momentum
                np.multiply(g, 1 - group["dampening"], out=tmp)
                b += tmp
            if group["nesterov"]:
                np.multiply(b, momentum, out=tmp)
                tmp += g
                g = tmp
            else:
                g = b
        np.multiply(g, -lr, out=tmp)
        p += tmp
    for_each_piece(optimizer, update, param, grad, *buffers)
