"""The fused GPU kernels (``scratchlm.fast.cuda_kernels``, called by the CUDA classes of
``scratchlm.fast.cuda``) against the reference ops they stand in for: GELU, layer norm,
softmax and cross-entropy, forward and backward, and several Adam/AdamW steps, each run once
with the kernels (``sl.use_fast(True)``) and once with the reference (``sl.use_fast(False)``),
in float32 and float64, over rows of odd lengths (float64 to 1e-12 for every op, over every
op's cases, is also in ``tests/test_op_table.py``).

Each comparison runs in two places:

* ``cuda``: CuPy on a real GPU (skipped, as everywhere in these tests, without one);
* ``emulated``: NumPy arrays, looked up as if on "cuda" (so they get the CUDA classes), with
  ``cuda_kernels`` seeing them as GPU arrays and the kernels' own CUDA source compiled for
  the CPU by ``tests/cuda_emulator.py`` (skipped without g++). That checks the dispatch, the
  Python wrappers, the arguments and the kernels' logic (block reductions, striding over
  rows longer than a block) on any machine; not the GPU's arithmetic.

The CPU tests at the end check that NumPy arrays never take the kernel path, that asking the
backend for a kernel without a GPU is a clear error, and (with nvcc) that the sources compile
as CUDA.
"""

import shutil
import subprocess

import numpy as np
import pytest
from conftest import TOLERANCE
from cuda_emulator import GXX, Backend, emulate_cuda

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.optim as optim
from scratchlm import backend
from scratchlm.fast import cuda_kernels

MODES = [pytest.param("cuda", marks=pytest.mark.skipif(
             not sl.gpu_available(), reason="no GPU (CuPy with a CUDA device) on this machine")),
         pytest.param("emulated", marks=pytest.mark.skipif(
             GXX is None, reason="no g++ to build the CUDA emulator"))]
DTYPES = [np.float32, np.float64]
ROW_SHAPES = [(5, 1), (3, 7), (2, 2, 768), (2, 1000), (2, 1500)]  # 1500 > 1024 threads
ELEMENTWISE_SHAPES = [(), (1,), (7,), (3, 768), (2, 5, 1000)]


class Kernels:
    """Where the kernels run (tensors go to ``device``), standing in for ``backend`` inside
    ``cuda_kernels`` to record the name of every kernel launched."""

    def __init__(self, device, inner, monkeypatch):
        self.device, self.inner, self.monkeypatch, self.used = device, inner, monkeypatch, []

    def is_gpu_array(self, array):
        return self.inner.is_gpu_array(array)

    def get_array_module(self, *arrays):
        return self.inner.get_array_module(*arrays)

    def elementwise_kernel(self, in_params, out_params, operation, name, options=()):
        self.used.append(name)
        return self.inner.elementwise_kernel(in_params, out_params, operation, name, options)

    def raw_kernel(self, code, name, options=()):
        self.used.append(name)
        return self.inner.raw_kernel(code, name, options)

    def tensor(self, array, dtype, requires_grad=False):
        return sl.tensor(np.asarray(array, dtype=dtype), requires_grad=requires_grad,
                         device=self.device)

    def fused_and_reference(self, run):
        """``run()`` (a list of arrays) with the kernels and then without: the two results as
        NumPy arrays, and the kernels the fused run launched."""
        results, launched = {}, {}
        for enabled in (True, False):
            with sl.use_fast(enabled):
                self.used.clear()
                results[enabled] = [backend.to_numpy(a) for a in run()]
                launched[enabled] = sorted(set(self.used))
        assert launched[False] == [], "the reference path launched a fused kernel"
        return results[True], results[False], launched[True]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return Backend(str(tmp_path_factory.mktemp("cuda_emulator")))


@pytest.fixture(params=MODES)
def kernels(request, monkeypatch):
    if request.param == "cuda":
        found = Kernels("cuda", backend, monkeypatch)
        monkeypatch.setattr(cuda_kernels, "backend", found)
    else:
        found = Kernels("cpu", request.getfixturevalue("emulator"), monkeypatch)
        emulate_cuda(monkeypatch, found)
    return found


def assert_all_close(fused, reference, dtype):
    assert len(fused) == len(reference)
    for i, (a, b) in enumerate(zip(fused, reference)):
        assert a.shape == b.shape and a.dtype == b.dtype == np.dtype(dtype), i
        np.testing.assert_allclose(a, b, **TOLERANCE[np.dtype(dtype)], err_msg=f"output {i}")


# ------------------------------------------------------------------------------ the ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
def test_gelu_fused_equals_reference(kernels, shape, dtype):
    rng = np.random.default_rng(1)
    x_values = rng.standard_normal(shape) * 4  # into both tails, where h → 0 or 1
    cotangent = rng.standard_normal(shape)

    def run():
        x = kernels.tensor(x_values, dtype, requires_grad=True)
        y = F.gelu(x)
        y.backward(kernels.tensor(cotangent, dtype))
        return [y.data, x.grad]

    fused, reference, launched = kernels.fused_and_reference(run)
    assert launched == ["scratchlm_gelu_tanh_backward", "scratchlm_gelu_tanh_forward"]
    assert_all_close(fused, reference, dtype)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES)
def test_layer_norm_fused_equals_reference(kernels, shape, dtype, affine):
    rng = np.random.default_rng(2)
    features = shape[-1]
    x_values = rng.standard_normal(shape) * 3 + 1
    weight_values, bias_values = rng.standard_normal(features), rng.standard_normal(features)
    cotangent = rng.standard_normal(shape)

    def run():
        x = kernels.tensor(x_values, dtype, requires_grad=True)
        params = [kernels.tensor(v, dtype, requires_grad=True)
                  for v in (weight_values, bias_values)] if affine else [None, None]
        y = F.layer_norm(x, *params, eps=1e-5)
        y.backward(kernels.tensor(cotangent, dtype))
        return [y.data, x.grad] + [p.grad for p in params if p is not None]

    fused, reference, launched = kernels.fused_and_reference(run)
    assert launched == ["layer_norm_backward_rows", "layer_norm_rows"]
    assert_all_close(fused, reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES)
def test_softmax_fused_equals_reference(kernels, shape, dtype):
    rng = np.random.default_rng(3)
    x_values = rng.standard_normal(shape) * 5
    cotangent = rng.standard_normal(shape)

    def run():
        x = kernels.tensor(x_values, dtype, requires_grad=True)
        y = F.softmax(x, axis=-1)
        y.backward(kernels.tensor(cotangent, dtype))
        return [y.data, x.grad]

    fused, reference, launched = kernels.fused_and_reference(run)
    assert launched == ["softmax_backward_rows", "softmax_rows"]
    assert_all_close(fused, reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_a_strided_view_and_off_the_last_axis(kernels, dtype):
    """A transposed (non-contiguous) input goes through the row kernels, copied to rows; a
    softmax along another axis keeps the reference code."""
    rng = np.random.default_rng(4)
    x_values = rng.standard_normal((40, 3)) * 5
    cotangent = rng.standard_normal((3, 40))

    def run_transposed():
        x = kernels.tensor(x_values, dtype, requires_grad=True)
        y = F.softmax(x.transpose(1, 0), axis=-1)
        y.backward(kernels.tensor(cotangent, dtype))
        return [y.data, x.grad]

    fused, reference, launched = kernels.fused_and_reference(run_transposed)
    assert launched == ["softmax_backward_rows", "softmax_rows"]
    assert_all_close(fused, reference, dtype)

    def run_axis_0():
        x = kernels.tensor(x_values, dtype, requires_grad=True)
        y = F.softmax(x, axis=0)
        y.backward(kernels.tensor(cotangent.T, dtype))
        return [y.data, x.grad]

    fused, reference, launched = kernels.fused_and_reference(run_axis_0)
    assert launched == []
    assert_all_close(fused, reference, dtype)


ATTENTION_CASES = {  # q, k (and v) shapes, is_causal
    "causal-self-attention": ((2, 3, 5, 4), (2, 3, 5, 4), True),
    "one-cached-query": ((1, 2, 1, 8), (1, 2, 7, 8), False),
    "causal-more-keys-than-queries": ((2, 3, 4), (2, 6, 4), True),
    "causal-rows-of-1500-keys": ((1, 1, 3, 8), (1, 1, 1500, 8), True),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ATTENTION_CASES)
def test_attention_fused_equals_reference(kernels, case, dtype):
    """The scale, causal mask and softmax in one kernel, the softmax backward with the scale
    in another, against the reference's chain of array operations."""
    q_shape, k_shape, causal = ATTENTION_CASES[case]
    rng = np.random.default_rng(7)
    values = [rng.standard_normal(shape) for shape in (q_shape, k_shape, k_shape)]
    cotangent = rng.standard_normal(q_shape)

    def run():
        q, k, v = (kernels.tensor(a, dtype, requires_grad=True) for a in values)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.backward(kernels.tensor(cotangent, dtype))
        return [out.data, q.grad, k.grad, v.grad]

    fused, reference, launched = kernels.fused_and_reference(run)
    assert launched == ["attention_softmax_rows", "softmax_backward_rows"]
    assert_all_close(fused, reference, dtype)


@pytest.mark.parametrize("variant", ["boolean-mask", "dropout"])
def test_attention_with_a_mask_or_dropout_keeps_the_reference(kernels, variant):
    rng = np.random.default_rng(8)
    q, k, v = (kernels.tensor(rng.standard_normal((2, 4, 3)), np.float64) for _ in range(3))
    mask = kernels.tensor(rng.random((4, 4)) < 0.7, bool) if variant == "boolean-mask" else None
    kernels.used.clear()
    F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                   dropout_p=0.5 if variant == "dropout" else 0.0)
    assert kernels.used == []


CROSS_ENTROPY_CASES = {
    "rows-of-7-some-ignored": ((6, 7), 0.0, "mean"),
    "rows-of-1": ((4, 1), 0.0, "sum"),
    "batch-time-1000-smoothed": ((2, 3, 1000), 0.1, "mean"),
    "rows-of-1500-none": ((3, 1500), 0.2, "none"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CROSS_ENTROPY_CASES)
def test_cross_entropy_fused_equals_reference(kernels, case, dtype):
    shape, smoothing, reduction = CROSS_ENTROPY_CASES[case]
    rng = np.random.default_rng(5)
    logits_values = rng.standard_normal(shape) * 4
    target = rng.integers(0, shape[-1], size=shape[:-1])
    target.reshape(-1)[::3] = -100  # ignored positions
    cotangent = rng.standard_normal(shape[:-1]) if reduction == "none" else np.asarray(1.5)

    def run():
        logits = kernels.tensor(logits_values, dtype, requires_grad=True)
        loss = F.cross_entropy(logits, backend.to_device(target, kernels.device),
                               label_smoothing=smoothing, reduction=reduction)
        loss.backward(kernels.tensor(cotangent, dtype))
        return [loss.data, logits.grad]

    fused, reference, launched = kernels.fused_and_reference(run)
    assert launched == ["softmax_rows"]
    assert_all_close(fused, reference, dtype)


ADAM_CASES = {
    "adamw": ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    "adam": ("Adam", dict(lr=1e-2)),
    "adam-l2": ("Adam", dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ADAM_CASES)
def test_adam_steps_fused_equal_reference(kernels, case, dtype):
    name, kwargs = ADAM_CASES[case]
    rng = np.random.default_rng(6)
    shapes = [(1,), (7,), (3, 768), (1000,)]
    starts = [rng.standard_normal(shape) for shape in shapes]
    grads = [[rng.standard_normal(shape) for shape in shapes] for _ in range(5)]

    def run():
        params = [kernels.tensor(start, dtype, requires_grad=True) for start in starts]
        optimizer = getattr(optim, name)(params, **kwargs)
        for step_grads in grads:
            for param, grad in zip(params, step_grads):
                param.grad = kernels.tensor(grad, dtype).data
            optimizer.step()
        states = [optimizer.state[i] for i in range(len(params))]
        return ([p.data for p in params] + [s["exp_avg"] for s in states]
                + [s["exp_avg_sq"] for s in states])

    fused, reference, launched = kernels.fused_and_reference(run)
    assert launched == ["scratchlm_adam_update"]
    assert_all_close(fused, reference, dtype)


# ------------------------------------------------------------------------------ on the CPU
def test_numpy_arrays_never_take_the_kernel_path(monkeypatch):
    def no_kernel(*args, **kwargs):
        raise AssertionError("a NumPy array reached a CUDA kernel")

    monkeypatch.setattr(backend, "elementwise_kernel", no_kernel)
    monkeypatch.setattr(backend, "raw_kernel", no_kernel)
    rng = np.random.default_rng(7)
    with sl.use_fast(True):
        x = sl.tensor(rng.standard_normal((3, 7)), requires_grad=True)
        w = sl.tensor(np.ones(7), requires_grad=True)
        b = sl.tensor(np.zeros(7), requires_grad=True)
        outputs = [F.gelu(x), F.softmax(x), F.layer_norm(x, w, b),
                   F.cross_entropy(x, np.array([0, 3, 6]))]
        # the CPU's fast classes ran, not the CUDA ones
        assert [type(y._ctx).__module__ for y in outputs] == ["scratchlm.fast.cpu"] * 4
        loss = (outputs[0].sum() + (outputs[1] * x).sum() + outputs[2].sum() + outputs[3])
        loss.backward()
        optim.AdamW([x, w, b]).step()
        optim.Adam([x, w, b], weight_decay=0.1).step()
    assert not cuda_kernels.fusable(x.data, w.data)
    assert not cuda_kernels.fusable_rows(x.data)


@pytest.mark.skipif(sl.gpu_available(), reason="this machine has a GPU")
def test_asking_for_a_kernel_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"elementwise_kernel\('k'\): CUDA kernels run only "
                                           r"on an NVIDIA GPU, and none was found"):
        backend.elementwise_kernel("T x", "T y", "y = x", "k")
    with pytest.raises(RuntimeError, match=r"raw_kernel\('softmax_rows'\): .*pip install"):
        backend.raw_kernel(cuda_kernels.row_kernel_source("softmax_rows", np.float32),
                           "softmax_rows")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc (CUDA toolkit)")
def test_kernel_sources_compile_as_cuda(tmp_path):
    """Every row kernel, and every elementwise operation wrapped as CuPy wraps it (``const T
    &x`` for an input array, ``T &y`` for an output, ``T`` for a scalar), in both dtypes."""
    sources = []
    for name in cuda_kernels.ROW_KERNELS:
        for dtype in DTYPES:
            sources.append(cuda_kernels.row_kernel_source(name, dtype))
    specs = [cuda_kernels._GELU_TANH_FORWARD, cuda_kernels._GELU_TANH_BACKWARD,
             cuda_kernels._ADAM_UPDATE]
    for spec in specs:
        inputs = [p.split()[1] for p in spec["in_params"].split(",")]
        outputs = [p.split()[1] for p in spec["out_params"].split(",")]
        arrays = inputs[:1] if spec is cuda_kernels._ADAM_UPDATE else inputs  # the rest scalars
        params = ([f"const T* _raw_{n}" if n in arrays else f"const T {n}" for n in inputs]
                  + [f"T* _raw_{n}" for n in outputs] + ["long long _n"])
        bindings = ([f"const T &{n} = _raw_{n}[i];" for n in arrays]
                    + [f"T &{n} = _raw_{n}[i];" for n in outputs])
        for dtype in ("float", "double"):
            sources.append(
                f"typedef {dtype} T;\n"
                f'extern "C" __global__ void {spec["name"]}({", ".join(params)}) {{\n'
                "  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < _n;"
                " i += (long long)gridDim.x * blockDim.x) {\n    "
                + "\n    ".join(bindings) + "\n" + spec["operation"] + "\n  }\n}\n")
    paths = []
    for i, source in enumerate(sources):
        paths.append(tmp_path / f"kernel_{i}.cu")
        paths[-1].write_text(source)
    result = subprocess.run(["nvcc", "-ptx", *cuda_kernels.OPTIONS, "-odir", str(tmp_path),
                             *map(str, paths)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert all(path.with_suffix(".ptx").exists() for path in paths)
