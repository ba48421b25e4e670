"""A CPU stand-in for ``backend.elementwise_kernel`` and ``backend.raw_kernel``, so that the
fused kernels' CUDA source (``scratchlm.fast.cuda_kernels``) runs, and is tested, on a
machine without a GPU.

The source is compiled by g++ as C++ with a small header that plays CUDA's execution model:

* a raw kernel's blocks run one after another; a block's threads are fibers (``ucontext``)
  switched only where they wait: ``__syncthreads()`` holds every thread of the block until all
  have reached it, a warp shuffle only the 32 lanes of its warp (it writes each lane's value to
  a slot, waits, reads the partner's slot and waits again). A barrier or shuffle that some
  threads skip is reported as an error. Between two barriers the warps run one at a time, each
  as far as it can go, last warp first and then, after the next barrier, first warp first: so
  a warp that reads shared memory another warp has not written yet, or that another warp
  overwrites too early, for want of a barrier, reads the wrong value;
* arguments are checked as CuPy passes them: an array for a pointer parameter must be
  C-contiguous with the pointer's dtype (a raw kernel ignores strides), a scalar must be a
  NumPy scalar of the C type (CuPy passes a Python int as ``long long``, a float as ``double``);
* an elementwise kernel's ``operation`` runs once per element of the broadcast shape with the
  bindings CuPy generates (``const T &x`` for an input array, ``T &y`` for an output, a plain
  ``T`` for a scalar).

Not played: the GPU's arithmetic (FMA contraction, CUDA's own exp/tanh, whose last bits
differ) and timing; data races that a fixed order of fibers cannot show.
"""

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from scratchlm import backend

GXX = shutil.which("g++")

_HEADER = r"""
#include <math.h>
#include <ucontext.h>
#include <functional>
#include <vector>

struct emu_dim3 { unsigned int x, y, z; };
static emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {
enum { RUNNABLE, WARP_WAIT, BLOCK_WAIT, DONE };
static const size_t STACK = 64 * 1024;
static std::vector<ucontext_t> fibers;
static std::vector<char> stacks;
static std::vector<int> state;
static std::vector<double> slots;
static ucontext_t scheduler;
static unsigned current;
static std::function<void()> body;
static const char* error = "";

static void wait(int why) { state[current] = why; swapcontext(&fibers[current], &scheduler); }
static void entry() { body(); state[current] = DONE; }
static void resume(unsigned t) {
    current = t;
    threadIdx = {t, 0, 0};
    swapcontext(&scheduler, &fibers[t]);
}

// Runs one block. The first warp in the order runs as far as it can (its shuffles wait
// only for its own lanes) before the next warp moves; the order flips at every barrier.
static int run_block(unsigned block) {
    const unsigned warps = (block + 31) / 32;
    bool descending = true;
    for (;;) {
        bool progressed = false;
        for (unsigned k = 0; k < warps && !progressed; ++k) {
            const unsigned w = descending ? warps - 1 - k : k;
            const unsigned first = w * 32, last = first + 32 < block ? first + 32 : block;
            unsigned runnable = 0, waiting = 0;
            for (unsigned t = first; t < last; ++t) {
                runnable += state[t] == RUNNABLE;
                waiting += state[t] == WARP_WAIT;
            }
            if (runnable) {
                for (unsigned t = first; t < last; ++t)
                    if (state[t] == RUNNABLE) resume(t);
                progressed = true;
            } else if (waiting) {
                if (waiting != last - first) {
                    error = "a warp shuffle not reached by every lane of its warp";
                    return 4;
                }
                for (unsigned t = first; t < last; ++t) state[t] = RUNNABLE;
                progressed = true;
            }
        }
        if (progressed) continue;
        unsigned at_barrier = 0, done = 0;
        for (unsigned t = 0; t < block; ++t) {
            at_barrier += state[t] == BLOCK_WAIT;
            done += state[t] == DONE;
        }
        if (done == block) return 0;
        if (at_barrier != block) {
            error = "__syncthreads() not reached by every thread of the block";
            return 2;
        }
        for (unsigned t = 0; t < block; ++t) state[t] = RUNNABLE;
        descending = !descending;
    }
}

static int launch(unsigned grid, unsigned block, std::function<void()> fn) {
    error = "";
    if (grid == 0 || block == 0 || block > 1024) { error = "bad launch configuration"; return 1; }
    body = fn;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    fibers.assign(block, ucontext_t());
    stacks.assign(block * STACK, 0);
    slots.assign(block, 0.0);
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        state.assign(block, RUNNABLE);
        for (unsigned t = 0; t < block; ++t) {
            getcontext(&fibers[t]);
            fibers[t].uc_stack.ss_sp = &stacks[t * STACK];
            fibers[t].uc_stack.ss_size = STACK;
            fibers[t].uc_link = &scheduler;
            makecontext(&fibers[t], entry, 0);
        }
        const int status = run_block(block);
        if (status) return status;
    }
    return error[0] ? 3 : 0;
}
}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() emu::wait(emu::BLOCK_WAIT)

template <typename V> V __shfl_xor_sync(unsigned mask, V value, int lane_mask) {
    if (mask != 0xffffffffu || blockDim.x % 32 != 0) emu::error = "shuffle of a partial warp";
    emu::slots[threadIdx.x] = (double)value;
    emu::wait(emu::WARP_WAIT);
    const V other = (V)emu::slots[threadIdx.x ^ (unsigned)lane_mask];
    emu::wait(emu::WARP_WAIT);
    return other;
}

extern "C" const char* emu_error() { return emu::error; }
"""

_C_TYPES = {"float": (np.float32, ctypes.c_float), "double": (np.float64, ctypes.c_double),
            "int": (np.int32, ctypes.c_int), "long long": (np.int64, ctypes.c_longlong)}
_CTYPE_OF = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _compile(source, workdir):
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    library = Path(workdir) / f"kernel_{digest}.so"
    if not library.exists():
        path = library.with_suffix(".cpp")
        path.write_text(source)
        # no multiply-add contraction, as the kernels are compiled with --fmad=false
        subprocess.run([GXX, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-w",
                        "-o", str(library), str(path)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(library))


def _parse_params(text):
    """[(C base type, is_pointer, name)] from a C parameter list."""
    params = []
    for decl in text.split(","):
        words = decl.replace("*", " * ").split()
        name = words[-1]
        pointer = "*" in words
        base = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__", "*"))
        params.append((base, pointer, name))
    return params


class RawKernel:
    """Emulates ``cupy.RawKernel(code, name)``: ``kernel(grid, block, args)``."""

    def __init__(self, code, name, workdir):
        self.name = name
        match = re.search(r"typedef\s+(float|double)\s+T\s*;", code)
        self.types = {"T": match.group(1)} if match else {}
        signature = re.search(r'extern\s+"C"\s+__global__\s+void\s+' + name + r"\s*\((.*?)\)",
                              code, re.S)
        if signature is None:
            raise ValueError(f"no extern \"C\" __global__ function {name!r} in the source")
        self.params = _parse_params(signature.group(1))
        decls = ", ".join(signature.group(1).split(","))
        names = ", ".join(p[2] for p in self.params)
        launcher = (f'\nextern "C" int launch_{name}(unsigned _grid, unsigned _block, {decls}) '
                    f"{{ return emu::launch(_grid, _block, [&]() {{ {name}({names}); }}); }}\n")
        self.library = _compile(_HEADER + code + launcher, workdir)
        self.function = getattr(self.library, f"launch_{name}")
        self.function.restype = ctypes.c_int
        self.library.emu_error.restype = ctypes.c_char_p

    def _c_type(self, base):
        return self.types.get(base, base)

    def __call__(self, grid, block, args):
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} "
                            "parameters")
        grid, block = tuple(grid), tuple(block)
        if grid[1:] not in ((), (1,), (1, 1)) or block[1:] not in ((), (1,), (1, 1)):
            raise ValueError(f"{self.name}: only 1-D grids and blocks are emulated")
        c_args = []
        for (base, pointer, pname), value in zip(self.params, args):
            c_type = self._c_type(base)
            dtype = np.dtype(_C_TYPES[c_type][0])
            where = f"{self.name}: argument {pname!r}"
            if pointer:
                if not isinstance(value, np.ndarray) or value.dtype != dtype:
                    raise TypeError(f"{where} must be an array of {dtype}, got {value!r:.60}")
                if not value.flags.c_contiguous:
                    raise ValueError(f"{where} is not C-contiguous (a raw kernel ignores "
                                     "strides)")
                c_args.append(ctypes.c_void_p(value.ctypes.data))
            else:
                if not isinstance(value, np.generic) or value.dtype != dtype:
                    raise TypeError(f"{where} must be a NumPy {dtype} scalar ({c_type}), got "
                                    f"{type(value).__name__} {value!r}")
                c_args.append(_C_TYPES[c_type][1](value))
        status = self.function(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), *c_args)
        if status != 0:
            raise RuntimeError(f"{self.name}: emulated launch failed: "
                               f"{self.library.emu_error().decode()}")


class ElementwiseKernel:
    """Emulates ``cupy.ElementwiseKernel(in_params, out_params, operation, name)`` for
    parameters of the placeholder type ``T`` (what the fused kernels use)."""

    def __init__(self, in_params, out_params, operation, name, workdir):
        self.inputs = [p.split() for p in in_params.split(",")]
        self.outputs = [p.split() for p in out_params.split(",")]
        for kind, pname in self.inputs + self.outputs:
            if kind != "T" or pname in ("i", "n") or pname.startswith("_"):
                raise ValueError(f"{name}: parameter {kind} {pname} is not emulated")
        self.operation, self.name, self.workdir = operation, name, workdir
        self._functions = {}

    def __call__(self, *args):
        if len(args) not in (len(self.inputs), len(self.inputs) + len(self.outputs)):
            raise TypeError(f"{self.name}: {len(args)} arguments")
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        dtype = arrays[0].dtype
        if dtype not in _CTYPE_OF or any(a.dtype != dtype for a in arrays):
            raise TypeError(f"{self.name}: arrays of dtypes {[a.dtype for a in arrays]}; "
                            "T must be one float dtype")
        ins, given_outs = args[:len(self.inputs)], args[len(self.inputs):]
        in_arrays = [a for a in ins if isinstance(a, np.ndarray)]
        shape = np.broadcast_shapes(*[a.shape for a in in_arrays + list(given_outs)])
        if any(o.shape != shape for o in given_outs):
            raise ValueError(f"{self.name}: output shapes {[o.shape for o in given_outs]} are "
                             f"not the broadcast shape {shape}")
        is_array = tuple(isinstance(a, np.ndarray) for a in ins)
        function = self._function(_CTYPE_OF[dtype], is_array)
        c_scalar = _C_TYPES[_CTYPE_OF[dtype]][1]
        outs = [np.ascontiguousarray(o) for o in given_outs] or [
            np.empty(shape, dtype) for _ in self.outputs]
        keep, c_args = [], []
        for value, array in zip(ins, is_array):
            if array:
                value = np.ascontiguousarray(np.broadcast_to(value, shape))
                keep.append(value)
                c_args.append(ctypes.c_void_p(value.ctypes.data))
            else:
                c_args.append(c_scalar(dtype.type(value)))
        c_args += [ctypes.c_void_p(o.ctypes.data) for o in outs]
        function(ctypes.c_longlong(int(np.prod(shape))), *c_args)
        for given, out in zip(given_outs, outs):
            if given is not out:
                given[...] = out
        results = list(given_outs) or outs
        return results[0] if len(results) == 1 else tuple(results)

    def _function(self, c_type, is_array):
        key = (c_type, is_array)
        if key not in self._functions:
            params, bindings = ["long long _n"], []
            for (_, pname), array in zip(self.inputs, is_array):
                if array:
                    params.append(f"const T* _raw_{pname}")
                    bindings.append(f"const T &{pname} = _raw_{pname}[i];")
                else:
                    params.append(f"const T {pname}")
            for _, pname in self.outputs:
                params.append(f"T* _raw_{pname}")
                bindings.append(f"T &{pname} = _raw_{pname}[i];")
            source = (f"#include <math.h>\ntypedef {c_type} T;\n"
                      f'extern "C" void {self.name}({", ".join(params)}) {{\n'
                      f"    for (long long i = 0; i < _n; ++i) {{\n        "
                      + "\n        ".join(bindings) + f"\n{self.operation}\n    }}\n}}\n")
            function = getattr(_compile(source, self.workdir), self.name)
            function.restype = None
            self._functions[key] = function
        return self._functions[key]


class Backend:
    """Stands in for :mod:`scratchlm.backend` inside :mod:`scratchlm.fast.cuda_kernels`
    (``monkeypatch.setattr(cuda_kernels, "backend", Backend())``): NumPy arrays count as GPU
    arrays and kernels are emulated (compiled once per source into ``workdir``). For the ops
    to pick their CUDA classes for NumPy inputs, the look-up must be told so as well:
    :func:`emulate_cuda` does both."""

    def __init__(self, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="scratchlm_cuda_emulator_")
        self._kernels = {}

    @staticmethod
    def is_gpu_array(array):
        return isinstance(array, np.ndarray)

    get_array_module = staticmethod(backend.get_array_module)

    def elementwise_kernel(self, in_params, out_params, operation, name, options=()):
        key = ("elementwise", name, in_params, out_params, operation)
        if key not in self._kernels:
            self._kernels[key] = ElementwiseKernel(in_params, out_params, operation, name,
                                                   self.workdir)
        return self._kernels[key]

    def raw_kernel(self, code, name, options=()):
        key = ("raw", name, code)
        if key not in self._kernels:
            self._kernels[key] = RawKernel(code, name, self.workdir)
        return self._kernels[key]


def emulate_cuda(monkeypatch, emulator):
    """Make NumPy arrays run the fast layer's CUDA implementations on ``emulator`` (a
    :class:`Backend`, or something standing in for one): every op, optimizer and backward
    pass looks up its fast version for "cuda" (through the one hook,
    ``scratchlm.autograd.dispatch.faster``), and the kernels see NumPy arrays as GPU arrays.
    With fast mode off (``sl.use_fast(False)``) the reference still runs."""
    from scratchlm.autograd import dispatch
    from scratchlm.fast import cuda_kernels, registry

    def on_cuda(reference, device):
        return registry.fast_version(reference, "cuda")
    monkeypatch.setattr(dispatch, "faster", on_cuda)
    monkeypatch.setattr(cuda_kernels, "backend", emulator)
