"""Data-parallel training: N processes (ranks), one copy of the model each, one shard of
every batch each, and the gradients averaged over the ranks before every update.

    g = (1/N) Σᵣ gᵣ            gᵣ: the mean gradient of rank r's B examples

With equal shards that is the mean gradient of the whole N·B batch, so N ranks × batch B
take the same steps as one process × batch N·B (to the rounding of the sums' order).

Communication runs on existing engines only, never sockets or process pools of our own:
MPI through mpi4py between CPU processes (start them with ``mpiexec -n N``), and NCCL
through CuPy between GPUs, NCCL's unique id handed from rank 0 to the others over MPI.
Gradients travel in flat buffers ("buckets") of about ``bucket_mb`` megabytes, in the
parameters' dtype: one message per bucket instead of one per parameter, since each message
pays a fixed latency (α) on top of its bytes (β per byte).

    import scratchlm.distributed as dist
    dist.init()                                   # "mpi" (CPU) or "nccl" (GPU)
    model = dist.DataParallel(model)              # rank 0's weights on every rank
    loss = model(*dist.shard_batch(batch))[1]     # this rank's part of the global batch
    loss.backward()
    model.all_reduce_gradients()                  # .grad now the mean over ranks
    optimizer.step()

:class:`ZeroRedundancyOptimizer` is ZeRO stage 1: each rank keeps the optimizer state of
only its share of the parameters, updates that share and all-gathers the rest.
"""

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager

import numpy as np

from scratchlm import backend

EXTRA = "pip install 'scratchlm[distributed]'"
BACKENDS = ("mpi", "nccl")

_world = None  # the _World of this process once init() has run


def _mpi():
    """mpi4py's MPI module (importing it initialises MPI), or a one-line error naming the
    extra that installs it."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("scratchlm.distributed needs mpi4py and an MPI library, which the "
                          f"`distributed` extra installs: {EXTRA}") from None
    return MPI


class _World:
    """This process's view of the group: MPI's communicator and, for "nccl", NCCL's."""

    def __init__(self, backend_name):
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        local, self.local_size = node.Get_rank(), node.Get_size()
        self.backend = backend_name
        self.device = "cpu"
        self.nccl = None
        if backend_name == "nccl":
            unique_id = np.zeros(backend.NCCL_UNIQUE_ID_BYTES, dtype=np.int64)
            if self.rank == 0:
                unique_id[:] = backend.nccl_unique_id()
            self.comm.Bcast(unique_id, root=0)
            self.nccl = backend.nccl_communicator(self.size, unique_id.tolist(), self.rank,
                                                  local)
            self.device = "cuda"

    # Collectives on arrays of this world's device (NCCL for GPU arrays, MPI for host ones).
    def all_reduce_sum(self, array):
        if backend.is_gpu_array(array):
            backend.nccl_all_reduce_sum(self._nccl_for(array), array)
        else:
            self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def broadcast(self, array, root=0):
        if backend.is_gpu_array(array):
            backend.nccl_broadcast(self._nccl_for(array), array, root)
        else:
            self.comm.Bcast(array, root=root)

    def all_gather(self, send, receive):
        if backend.is_gpu_array(send):
            backend.nccl_all_gather(self._nccl_for(send), send, receive)
        else:
            self.comm.Allgather(send, receive)

    def _nccl_for(self, array):
        if self.nccl is None:
            raise RuntimeError("scratchlm.distributed: a GPU array needs NCCL; call "
                               "dist.init('nccl') (init() was called with 'mpi')")
        return self.nccl


# ------------------------------------------------------------------------------- the group
def init(backend="mpi"):
    """Join the group of processes ``mpiexec`` started (a lone process is a group of one).

    ``backend``: "mpi" for CPU arrays, "nccl" for GPU arrays (each rank takes the GPU of its
    rank within its node). Calling it again with the same backend does nothing. Rank 0 says
    on stderr which process id each rank has, so a rank that dies can be told by its id."""
    global _world
    if backend not in BACKENDS:
        raise ValueError(f"dist.init: backend must be 'mpi' or 'nccl', got {backend!r}")
    if _world is not None:
        if _world.backend != backend:
            raise RuntimeError(f"dist.init: already initialised with {_world.backend!r}; a "
                               f"process joins one group, so {backend!r} cannot follow")
        return
    _world = _World(backend)
    if _world.size > 1:
        pids = np.zeros(_world.size, dtype=np.int64)
        _world.comm.Allgather(np.array([os.getpid()], dtype=np.int64), pids)
        if _world.rank == 0:
            ranks = ", ".join(f"rank {r}: pid {pid}" for r, pid in enumerate(pids))
            print(f"scratchlm.distributed: {_world.size} ranks over {backend} ({ranks})",
                  file=sys.stderr, flush=True)


def _require(what):
    if _world is None:
        raise RuntimeError(f"dist.{what}: call dist.init() first (and start the processes "
                           "with mpiexec -n N)")
    return _world


def rank():
    """This process's number in the group, 0 … world_size() − 1 (0 before init)."""
    return 0 if _world is None else _world.rank


def world_size():
    """How many processes train together (1 before init)."""
    return 1 if _world is None else _world.size


def local_size():
    """How many ranks share this node (and its memory)."""
    return 1 if _world is None else _world.local_size


def device():
    """The device this rank's arrays live on: "cpu" for MPI, "cuda" for NCCL."""
    return _require("device").device


def barrier():
    """Wait until every rank has reached this call."""
    _require("barrier").comm.Barrier()


@contextmanager
def rank_zero_first():
    """Rank 0 runs the block first (it may write caches or tidy a run folder), the other
    ranks after it (reading what it wrote); without a group, just the block."""
    if rank() != 0:
        barrier()
    yield
    if rank() == 0 and world_size() > 1:
        barrier()


def abort(message, code=1):
    """Print ``rank R: message`` and stop every rank of the group (``MPI_Abort``): an
    error on one rank must never leave the others waiting in a collective forever."""
    print(f"rank {rank()}: {message}", file=sys.stderr, flush=True)
    if _world is not None and _world.size > 1:
        _world.comm.Abort(code)
    raise SystemExit(code)


def all_reduce(values, op="mean"):
    """The mean (``op="mean"``) or maximum (``"max"``) over ranks of a few host numbers — a
    loss, a flag — as a float64 array."""
    world = _require("all_reduce")
    if op not in ("mean", "max"):
        raise ValueError(f"dist.all_reduce: op must be 'mean' or 'max', got {op!r}")
    values = np.array(values, dtype=np.float64).reshape(-1)
    if world.size > 1:
        mpi_op = world.MPI.SUM if op == "mean" else world.MPI.MAX
        world.comm.Allreduce(world.MPI.IN_PLACE, values, op=mpi_op)
        if op == "mean":
            values /= world.size
    return values


def shard_batch(batch, rank_=None, size=None):
    """This rank's part of a global batch: rows ``[r·B, (r+1)·B)`` of every array in
    ``batch`` (an array or a tuple of arrays whose first axis is the N·B examples)."""
    r = rank() if rank_ is None else rank_
    n = world_size() if size is None else size
    arrays = batch if isinstance(batch, (tuple, list)) else (batch,)
    rows = arrays[0].shape[0]
    if rows % n:
        raise ValueError(f"dist.shard_batch: a global batch of {rows} examples does not "
                         f"split evenly over {n} ranks; make it a multiple of {n}")
    part = rows // n
    shards = tuple(a[r * part:(r + 1) * part] for a in arrays)
    return shards if isinstance(batch, (tuple, list)) else shards[0]


# -------------------------------------------------------------------- parameters, gradients
def _parameters(model):
    params = model.parameters() if hasattr(model, "parameters") else model
    return list(params)


def broadcast_parameters(model, root=0):
    """Copy rank ``root``'s parameter values into every rank's model (in place), so the
    ranks start from the same weights whatever their seeds."""
    world = _require("broadcast_parameters")
    if world.size == 1:
        return
    for param in _parameters(model):
        data = param.data if param.data.flags.c_contiguous else param.data.copy()
        world.broadcast(data, root)
        if data is not param.data:
            param.data[...] = data
        param.bump_version()


def buckets(params, bucket_mb=25):
    """``params`` cut into consecutive groups of one dtype and device holding at most
    ``bucket_mb`` megabytes each (a parameter larger than that is a bucket of its own)."""
    if not bucket_mb > 0:
        raise ValueError(f"dist: bucket_mb must be > 0, got {bucket_mb!r}")
    limit = bucket_mb * 2 ** 20
    groups, current, current_kind, size = [], [], None, 0
    for p in params:
        kind = (p.data.dtype, backend.device_of(p.data))
        fits = current and kind == current_kind and size + p.data.nbytes <= limit
        if current and not fits:
            groups.append(current)
            current, size = [], 0
        current.append(p)
        current_kind = kind
        size += p.data.nbytes
    if current:
        groups.append(current)
    return groups


class GradientAverager:
    """Averages the ``.grad`` of a fixed list of parameters over the ranks, in place,
    through one reused flat buffer per bucket.

    A parameter whose ``.grad`` is None on every rank stays None (the optimizer skips it,
    as it would in one process); one with a gradient on some rank only gets zeros from the
    others."""

    def __init__(self, params, bucket_mb=25):
        self.params = [p for p in params if p.requires_grad]
        self.bucket_mb = bucket_mb
        buckets(self.params, bucket_mb)  # checks bucket_mb now
        self._buffers = {}  # (dtype, device, size) -> flat buffer

    def __call__(self):
        world = _require("all_reduce_gradients")
        if world.size == 1:
            return
        has_grad = np.array([p.grad is not None for p in self.params], dtype=np.int8)
        world.comm.Allreduce(world.MPI.IN_PLACE, has_grad, op=world.MPI.MAX)
        live = [p for p, flag in zip(self.params, has_grad) if flag]
        for bucket in buckets(live, self.bucket_mb):
            flat = self._buffer(bucket)
            offset = 0
            for p in bucket:
                if p.grad is None:
                    flat[offset:offset + p.size] = 0
                else:
                    flat[offset:offset + p.size] = p.grad.reshape(-1)
                offset += p.size
            world.all_reduce_sum(flat)
            flat /= world.size
            offset = 0
            for p in bucket:
                mean = flat[offset:offset + p.size].reshape(p.shape)
                if p.grad is None:
                    p.grad = mean.copy()
                else:
                    p.grad[...] = mean
                offset += p.size

    def _buffer(self, bucket):
        size = sum(p.size for p in bucket)
        key = (bucket[0].data.dtype, backend.device_of(bucket[0].data), size)
        if key not in self._buffers:
            xp = backend.get_array_module(bucket[0].data)
            self._buffers[key] = xp.empty(size, dtype=bucket[0].data.dtype)
        return self._buffers[key]


def all_reduce_gradients(model, bucket_mb=25):
    """Replace every parameter's ``.grad`` by its mean over the ranks, in place, through
    flat buffers of at most ``bucket_mb`` MB in the parameters' dtype. ``model``: a Module
    or an iterable of parameters."""
    GradientAverager(_parameters(model), bucket_mb)()


class DataParallel:
    """A model trained data-parallel: rank 0's weights are copied to every rank when it is
    made, calls go to the model, and :meth:`all_reduce_gradients` (after ``backward``)
    averages the gradients over the ranks.

    Unlike PyTorch's wrapper it adds no ``module.`` prefix: every other attribute
    (``state_dict``, ``parameters``, ``config``…) is the model's own, so a checkpoint of a
    data-parallel run loads into a plain model."""

    def __init__(self, module, bucket_mb=25):
        _require("DataParallel")
        self.module = module
        broadcast_parameters(module)
        self._averager = GradientAverager(list(module.parameters()), bucket_mb)

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def all_reduce_gradients(self):
        self._averager()

    def __getattr__(self, name):
        return getattr(self.module, name)


# ----------------------------------------------------------------------------- ZeRO stage 1
class ZeroRedundancyOptimizer:
    """ZeRO stage 1: ``optimizer``'s state (AdamW's two moments: twice the model's size)
    sharded over the ranks.

    Each parameter is owned by one rank (largest first, to the least loaded rank). At
    :meth:`step` each rank updates only the parameters it owns — its optimizer keeps no
    state for the others — and then every rank's updated parameters are all-gathered, so all
    ranks hold the same weights again. The update of a parameter reads only its own
    gradient and state, so the steps are the ones the whole optimizer would take.

    :meth:`state_dict` is collective: rank 0 receives every rank's state and returns the
    whole optimizer's state dict (other ranks return None); :meth:`load_state_dict` takes a
    whole state dict on every rank and keeps its own share."""

    def __init__(self, optimizer):
        world = _require("ZeroRedundancyOptimizer")
        self.optimizer = optimizer
        self.entries = [(key, param) for _, key, param in optimizer.named_params()]
        kinds = {(p.data.dtype, backend.device_of(p.data)) for _, p in self.entries}
        if len(kinds) > 1:
            raise ValueError("ZeroRedundancyOptimizer: the parameters must share one dtype "
                             f"and device, got {sorted(map(str, kinds))}")
        load = [0] * world.size
        self.owner = {}
        for key, param in sorted(self.entries, key=lambda e: -e[1].size):
            owner = load.index(min(load))
            self.owner[key] = owner
            load[owner] += param.size
        self.rank, self.size = world.rank, world.size
        self._mine = [(k, p) for k, p in self.entries if self.owner[k] == self.rank]
        self._chunk = max(load)
        param = self.entries[0][1]
        xp = backend.get_array_module(param.data)
        self._send = xp.zeros(self._chunk, dtype=param.data.dtype)
        self._receive = xp.zeros(self._chunk * self.size, dtype=param.data.dtype)

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        others = [(p, p.grad) for k, p in self.entries if self.owner[k] != self.rank]
        for p, _ in others:
            p.grad = None
        try:
            self.optimizer.step()
        finally:
            for p, grad in others:
                p.grad = grad
        self._all_gather_parameters()

    def _all_gather_parameters(self):
        world = _require("ZeroRedundancyOptimizer.step")
        offset = 0
        for _, p in self._mine:
            self._send[offset:offset + p.size] = p.data.reshape(-1)
            offset += p.size
        world.all_gather(self._send, self._receive)
        offsets = [r * self._chunk for r in range(self.size)]
        for key, p in self.entries:
            r = self.owner[key]
            if r != self.rank:
                p.data[...] = self._receive[offsets[r]:offsets[r] + p.size].reshape(p.shape)
                p.bump_version()
            offsets[r] += p.size

    def state_bytes(self):
        """Bytes of optimizer state this rank holds."""
        return sum(v.nbytes for entries in self.optimizer.state.values()
                   for v in entries.values() if hasattr(v, "nbytes"))

    def state_dict(self):
        world = _require("ZeroRedundancyOptimizer.state_dict")
        mine = self.optimizer.state_dict()
        names = list(self.optimizer.STATE_KEYS)
        for index, (key, param) in enumerate(self.entries):
            owner = self.owner[key]
            if owner == 0:
                continue
            if self.rank == owner:
                entries = mine["state"].get(key)
                world.comm.Send(np.array([entries is not None], dtype=np.int8), 0, tag=index)
                for name in names if entries is not None else ():
                    value = entries[name]
                    value = np.array([value], dtype=np.int64) if name == "step" else value
                    world.comm.Send(np.ascontiguousarray(value), 0, tag=index)
            elif self.rank == 0:
                flag = np.zeros(1, dtype=np.int8)
                world.comm.Recv(flag, owner, tag=index)
                if flag[0]:
                    entries = {}
                    for name in names:
                        shape, dtype = ((1,), np.int64) if name == "step" else (
                            param.shape, param.data.dtype)
                        value = np.empty(shape, dtype=dtype)
                        world.comm.Recv(value, owner, tag=index)
                        entries[name] = int(value[0]) if name == "step" else value
                    mine["state"][key] = entries
        if self.rank != 0:
            return None
        order = {key: i for i, (key, _) in enumerate(self.entries)}
        mine["state"] = dict(sorted(mine["state"].items(), key=lambda kv: order[kv[0]]))
        return mine

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict)
        self.optimizer.state = {k: v for k, v in self.optimizer.state.items()
                                if self.owner[k] == self.rank}


# --------------------------------------------------------------------------------- launching
def mpiexec_path():
    """The ``mpiexec`` beside this Python (the mpich wheel's), else the first on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError(f"no mpiexec found (beside {sys.executable} or on PATH); "
                                f"the `distributed` extra installs one: {EXTRA}")
    return found


def launch(nproc, arguments):
    """Run ``python -m scratchlm ARGUMENTS --distributed`` on ``nproc`` ranks under mpiexec
    and return its exit status. Ctrl-C reaches the ranks through mpiexec (which forwards
    SIGINT and SIGTERM to every rank), so this process ignores it and waits."""
    _mpi()  # the one-line error naming the extra, before anything starts
    command = [mpiexec_path(), "-n", str(nproc), sys.executable, "-m", "scratchlm",
               *arguments, "--distributed"]
    process = subprocess.Popen(command)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    try:
        return process.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
