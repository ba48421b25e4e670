"""The one place that knows NumPy from CuPy.

Every op asks :func:`get_array_module` for the module its inputs live in (``numpy`` on the
CPU, ``cupy`` on a GPU) and writes its maths once against that module, as DeZero and
Chainer do. No other file imports CuPy: the fused CUDA kernels of
:mod:`scratchlm.fast.cuda_kernels` are built through :func:`elementwise_kernel` and
:func:`raw_kernel` here.

CuPy imports fine on a machine without a GPU, so a GPU is detected with
``cupy.is_available()``, never by the import alone.
"""

import numpy as np

from scratchlm.checks import bad_argument, check_int

try:  # CuPy is the optional `gpu` extra.
    import cupy
    import cupyx
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None

DEVICES = ("cpu", "cuda")
_INSTALL_HINT = (
    "install the `gpu` extra on a machine with an NVIDIA GPU: "
    "pip install 'scratchlm[gpu]' (it installs cupy-cuda12x; pick the cupy wheel matching "
    "your CUDA version)"
)


def gpu_available():
    """True when CuPy is installed *and* it can see a CUDA device."""
    if cupy is None:
        return False
    try:
        return bool(cupy.is_available())
    except Exception:  # pragma: no cover - broken CUDA installs
        return False


def check_device(device, where="check_device"):
    """Validate a device name and return it; ``"cuda"`` needs a working GPU. ``where`` (the
    function or class that was given the device) starts the error's message."""
    if not isinstance(device, str) or device not in DEVICES:
        raise bad_argument(where, "device", device, "'cpu' or 'cuda'", "unknown device")
    if device == "cuda" and not gpu_available():
        reason = "CuPy is not installed" if cupy is None else "CuPy found no CUDA device"
        raise RuntimeError(f"device='cuda' was asked for but no GPU was found ({reason}); "
                           + _INSTALL_HINT)
    return device


def is_gpu_array(array):
    return cupy is not None and isinstance(array, cupy.ndarray)


def device_of(array):
    """``"cuda"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "cuda" if is_gpu_array(array) else "cpu"


def get_array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if cupy is None:
        return np
    return cupy.get_array_module(*arrays)


def xp_for(device):
    """The array module of a device name."""
    return cupy if check_device(device) == "cuda" else np


def to_device(array, device):
    """Move an array to ``device`` (a no-op when it is already there)."""
    if device == "cpu":
        return to_numpy(array)
    check_device(device)
    return cupy.asarray(array)


def synchronize(device):
    """Wait until every kernel queued on ``device`` has finished (a no-op on the CPU, whose
    ops return when done); GPU timings need it, since CuPy's calls return at once."""
    if check_device(device) == "cuda":
        cupy.cuda.Device().synchronize()


def to_numpy(array):
    """A host NumPy array (copied from the GPU when needed)."""
    if is_gpu_array(array):
        return cupy.asnumpy(array)
    return np.asarray(array)


def device_of_inputs(op, arrays):
    """The device of ``arrays`` (ndarrays among other values): "cpu" or "cuda". Raises if
    they live on different devices; ``op`` is the op's name, or the op itself (its name is
    looked up only for the error)."""
    if cupy is None:
        return "cpu"
    devices = {device_of(a) for a in arrays if hasattr(a, "shape")}
    if len(devices) > 1:
        raise RuntimeError(f"{getattr(op, 'name', op)}: inputs are on different devices "
                           "(cpu and cuda); move them to one device with .to(device) first")
    return devices.pop() if devices else "cpu"


def scatter_add(target, indices, values):
    """``target[indices] += values`` with repeated indices accumulating (in place).

    NumPy's ``np.add.at`` and CuPy's ``cupyx.scatter_add`` (``cupy.scatter_add`` was
    removed in CuPy 8).
    """
    if is_gpu_array(target):
        cupyx.scatter_add(target, indices, values)
    else:
        np.add.at(target, indices, values)


# ----------------------------------------------------------------------------- CUDA kernels
_kernels = {}  # (kind, name, source...) -> CuPy kernel object (compiled on its first call)


def _cached_kernel(key, what, build):
    kernel = _kernels.get(key)
    if kernel is None:
        if not gpu_available():
            reason = "CuPy is not installed" if cupy is None else "CuPy found no CUDA device"
            raise RuntimeError(f"{what}: CUDA kernels run only on an NVIDIA GPU, and none was "
                               f"found ({reason}); the NumPy code path needs no kernel. To "
                               "use the GPU, " + _INSTALL_HINT)
        kernel = _kernels[key] = build()
    return kernel


def elementwise_kernel(in_params, out_params, operation, name, options=()):
    """A ``cupy.ElementwiseKernel`` (built once per source, compiled by CuPy on its first
    call for each dtype): ``operation`` is CUDA C for one element, ``in_params`` and
    ``out_params`` are lists such as ``"T x, T y"`` with ``T`` the arrays' dtype, and
    ``options`` are NVRTC's. Raises a RuntimeError where there is no GPU."""
    return _cached_kernel(("elementwise", name, in_params, out_params, operation, options),
                          f"backend.elementwise_kernel({name!r})",
                          lambda: cupy.ElementwiseKernel(in_params, out_params, operation, name,
                                                         options=tuple(options)))


def raw_kernel(code, name, options=()):
    """A ``cupy.RawKernel`` for the ``extern "C" __global__`` function ``name`` of the CUDA
    source ``code`` (built once per source; call it as ``kernel(grid, block, args)`` with
    C-contiguous arrays and NumPy scalars of the C types); ``options`` are NVRTC's.
    Raises a RuntimeError where there is no GPU."""
    return _cached_kernel(("raw", name, code, options), f"backend.raw_kernel({name!r})",
                          lambda: cupy.RawKernel(code, name, options=tuple(options)))


# ----------------------------------------------------------------------------- random state
_seed = None
_generators = {}


def manual_seed(seed):
    """Seed every random generator scratchlm uses (parameter init, dropout, sampling)."""
    global _seed
    _seed = check_int("manual_seed", "seed", seed, 0, hint="(NumPy seeds its generators "
                      "with integers ≥ 0)")
    _generators.clear()


def generator(device="cpu"):
    """The shared random generator of a device (a ``Generator`` of NumPy or CuPy)."""
    if device not in _generators:
        if device == "cuda":
            check_device(device)
            _generators[device] = cupy.random.default_rng(_seed)
        else:
            _generators[device] = np.random.default_rng(_seed)
    return _generators[device]


def get_rng_state():
    """The CPU generator's state as a JSON-friendly dict (for checkpoints)."""
    return generator("cpu").bit_generator.state


def set_rng_state(state):
    """Restore the CPU generator from :func:`get_rng_state`'s dict."""
    generator("cpu").bit_generator.state = state


# ------------------------------------------------------------------------------------ NCCL
#: Bytes in NCCL's unique id (``NCCL_UNIQUE_ID_BYTES`` in nccl.h), which rank 0 creates and
#: the other ranks receive over MPI before they can join the NCCL communicator.
NCCL_UNIQUE_ID_BYTES = 128


def _nccl():
    check_device("cuda")
    from cupy.cuda import nccl
    return nccl


def _nccl_type(array):
    nccl = _nccl()
    types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
             "float64": nccl.NCCL_FLOAT64, "int32": nccl.NCCL_INT32,
             "int64": nccl.NCCL_INT64}
    if array.dtype.name not in types or not array.flags.c_contiguous:
        raise TypeError(f"NCCL: cannot send a {array.dtype} array (contiguous="
                        f"{array.flags.c_contiguous}); it takes contiguous {sorted(types)}")
    return types[array.dtype.name]


def nccl_unique_id():
    """A fresh NCCL unique id, as a list of ``NCCL_UNIQUE_ID_BYTES`` integers."""
    return list(_nccl().get_unique_id())


def nccl_communicator(world_size, unique_id, rank, local_rank):
    """Join the NCCL group of ``world_size`` ranks named by ``unique_id`` as ``rank``, on
    GPU ``local_rank`` modulo the GPUs of this node (which becomes the current device)."""
    nccl = _nccl()
    cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
    return nccl.NcclCommunicator(world_size, tuple(unique_id), rank)


def nccl_all_reduce_sum(communicator, array):
    """Sum a contiguous GPU array over the NCCL group, in place (then wait for it)."""
    stream = cupy.cuda.get_current_stream()
    communicator.allReduce(array.data.ptr, array.data.ptr, array.size, _nccl_type(array),
                           _nccl().NCCL_SUM, stream.ptr)
    stream.synchronize()


def nccl_broadcast(communicator, array, root):
    """Overwrite a contiguous GPU array with rank ``root``'s, in place."""
    stream = cupy.cuda.get_current_stream()
    communicator.bcast(array.data.ptr, array.size, _nccl_type(array), root, stream.ptr)
    stream.synchronize()


def nccl_all_gather(communicator, send, receive):
    """``receive`` (world_size × len(send)) ← every rank's ``send``, in rank order."""
    stream = cupy.cuda.get_current_stream()
    communicator.allGather(send.data.ptr, receive.data.ptr, send.size, _nccl_type(send),
                           stream.ptr)
    stream.synchronize()
