"""How much memory a GPT training run (or a BERT pre-training run:
:func:`estimate_bert_pretraining`) needs, worked out before the model is built, and how
much the machine has.

Training holds four things at its peak (the end of the forward pass and the start of the
backward pass, when every saved activation is alive and the first gradients appear):

    weights       P · s                 the parameters, s = 4 bytes each (float32)
    gradients     P · s                 one .grad per parameter
    AdamW state   2 P · s               the moments m and v
    activations   B · T · a · s         what the graph keeps for the backward pass

P counts the parameters of a :class:`~scratchlm.models.GPTConfig` (vocabulary V, context T,
L layers, H heads, width C; the head is tied to the token embedding, so it adds nothing):

    P = V·C + T·C                                   token and position embeddings
      + L·(12 C² + 13 C)                            per block: ln_1 2C, c_attn 3C²+3C,
                                                    c_proj C²+C, ln_2 2C, c_fc 4C²+4C,
                                                    mlp.c_proj 4C²+C
      + 2 C                                         ln_f
    (without biases, ``bias=False``: less L·(9C + 2C) + C, the Linear and LayerNorm biases)

The activations: every op's output stays alive until the backward pass has used it (its
graph node holds its inputs), and some ops keep more. Per token of a micro-batch of B
sequences of T tokens, counting float32 values, one Transformer block keeps

    ln_1       output C, normalised x̂ C, 1/σ 1            2C + 1
    c_attn     output q, k, v                            3C     (the heads are views of it)
    attention  output C, softmax weights H·T             C + H·T
    merge      the heads side by side again (a copy)     C
    c_proj     output                                    C
    residual   x + attn                                  C
    ln_2       as ln_1                                   2C + 1
    c_fc       output                                    4C
    GELU       output 4C, and its tanh factor 4C         8C
    c_proj     output                                    C
    residual   x + mlp                                   C
                                                        -------------
                                                        26 C + H·T + 2

and outside the blocks: the two embeddings and their sum 2C (the position rows are shared by
the batch), ln_f 2C, the logits V, the softmax probabilities the cross-entropy keeps V, and
at the start of the backward pass ∂L/∂logits V:

    a = L·(26 C + H·T + 2) + 4 C + 3 V

With dropout p > 0 each dropout keeps a mask of one byte per value and its output: the
embedding dropout and each block's two residual dropouts add (1 + 2L)·C·(s + 1) bytes per
token, and the attention dropout a mask of H·T bytes per layer.

The H·T term is the reference attention's (it keeps all of softmax(QKᵀ/√d)); the fast CPU
attention keeps only the causal half of the scores in blocks, so for it this is an upper
bound. Measured against :mod:`tracemalloc`'s peak over a few real training steps
(``tests/test_memory_estimate.py``), the estimate is within 20% on small configurations.

Saving a checkpoint happens between steps, when the activations and gradients are gone: the
state copies (weights and AdamW moments, 3 P · s) and the read-back that verifies the file
(3 P · s again) sit beside the weights and moments. The run needs the larger of the two peaks,
plus ``OVERHEAD_BYTES`` for what the first save imports (matplotlib for the loss plot) and
the Python objects of the graph. The interpreter, NumPy and the corpus are not counted: they
are already in memory when the estimate is compared with what is available.
"""

import os
from dataclasses import dataclass

#: Loss-plot imports (matplotlib), graph objects and other small allocations of a run.
OVERHEAD_BYTES = 64 * 2**20


def gpt_parameter_count(config):
    """P of the module docstring for a :class:`~scratchlm.models.GPTConfig`."""
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    count = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    if not getattr(config, "bias", True):
        count -= L * (9 * C + 2 * C) + C
    return count


def activation_values_per_token(config, sequence_length=None):
    """``a`` of the module docstring: float values kept per token of a micro-batch."""
    T = config.block_size if sequence_length is None else sequence_length
    L, H, C, V = config.n_layer, config.n_head, config.n_embd, config.vocab_size
    return L * (26 * C + H * T + 2) + 4 * C + 3 * V


@dataclass
class MemoryEstimate:
    """Bytes a GPT training run needs (see the module docstring); ``total`` is the figure to
    compare with the memory available."""

    parameters: int
    batch_size: int
    sequence_length: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    checkpointing: int
    overhead: int = OVERHEAD_BYTES

    @property
    def training_peak(self):
        """Weights, gradients, AdamW moments and activations: the peak of a training step."""
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def saving_peak(self):
        """Weights, AdamW moments and the checkpoint's copies: the peak of a save."""
        return self.weights + self.optimizer + self.checkpointing

    @property
    def total(self):
        return max(self.training_peak, self.saving_peak) + self.overhead

    def describe(self):
        """One line: the total and its parts."""
        return (f"about {format_bytes(self.total)} (weights {format_bytes(self.weights)}, "
                f"gradients {format_bytes(self.gradients)}, AdamW state "
                f"{format_bytes(self.optimizer)}, activations at batch {self.batch_size} × "
                f"{self.sequence_length} tokens {format_bytes(self.activations)})")


def estimate_gpt_training(config, batch_size, sequence_length=None, bytes_per_value=4):
    """The :class:`MemoryEstimate` of training a GPT of ``config`` with micro-batches of
    ``batch_size`` sequences of ``sequence_length`` tokens (default: the context length)
    under AdamW, in ``bytes_per_value``-byte floats. Gradient accumulation needs no more:
    each micro-batch's activations are gone before the next one's forward pass."""
    s = bytes_per_value
    T = config.block_size if sequence_length is None else sequence_length
    tokens = batch_size * T
    P = gpt_parameter_count(config)
    activations = tokens * activation_values_per_token(config, T) * s
    p = getattr(config, "dropout", 0.0)
    if p:
        L, H, C = config.n_layer, config.n_head, config.n_embd
        activations += tokens * ((1 + 2 * L) * C * (s + 1) + L * H * T)
    return MemoryEstimate(parameters=P, batch_size=batch_size, sequence_length=T,
                          weights=P * s, gradients=P * s, optimizer=2 * P * s,
                          activations=activations, checkpointing=6 * P * s)


def bert_parameter_count(config):
    """The parameters of a :class:`~scratchlm.models.bert.BertForPreTraining` of
    ``config`` (vocabulary V, positions T, segment types S, L layers, width C, feed-forward
    width F; the MLM decoder's weight is the token embedding, so only its bias counts):

        V·C + T·C + S·C + 2C                  the embeddings and their LayerNorm
      + L·(4C² + 2CF + 9C + F)                per layer: q, k, v and the output 4C² + 4C,
                                              the feed-forward 2CF + F + C, two LayerNorms 4C
      + C² + C                                the pooler
      + C² + 3C + V                           the MLM head: dense, LayerNorm, decoder bias
      + 2C + 2                                the NSP head"""
    V, T, S = config.vocab_size, config.max_position, config.type_vocab_size
    L, C, F = config.n_layer, config.n_embd, config.dim_feedforward
    return (V * C + T * C + S * C + 2 * C + L * (4 * C * C + 2 * C * F + 9 * C + F)
            + C * C + C + C * C + 3 * C + V + 2 * C + 2)


def estimate_bert_pretraining(config, batch_size, sequence_length=None, bytes_per_value=4):
    """The :class:`MemoryEstimate` of pre-training a BERT of ``config`` (MLM and NSP) under
    AdamW with batches of ``batch_size`` sequences of ``sequence_length`` tokens (default:
    ``max_position``). The parts are the GPT's (module docstring); per token, each encoder
    layer keeps what a GPT block keeps with its feed-forward width F for 4C, and the
    padding mask's copy of the attention scores, ``14 C + 3 F + 2 H·T + 2`` values; the
    embeddings and the MLM head (dense, GELU, LayerNorm, logits, softmax, ∂L/∂logits)
    ``11 C + 3 V``. With dropout p > 0: the mask byte and the output of the embedding
    dropout, of each layer's three (attention, feed-forward, residual) and of its attention
    weights' dropout."""
    s = bytes_per_value
    T = config.max_position if sequence_length is None else sequence_length
    tokens = batch_size * T
    L, H, C, F, V = (config.n_layer, config.n_head, config.n_embd, config.dim_feedforward,
                     config.vocab_size)
    P = bert_parameter_count(config)
    activations = tokens * (L * (14 * C + 3 * F + 2 * H * T + 2) + 11 * C + 3 * V) * s
    if getattr(config, "dropout", 0.0):
        activations += tokens * ((1 + 2 * L) * C + L * F + L * H * T) * (s + 1)
    return MemoryEstimate(parameters=P, batch_size=batch_size, sequence_length=T,
                          weights=P * s, gradients=P * s, optimizer=2 * P * s,
                          activations=activations, checkpointing=6 * P * s)


def training_flops(config, batch_size, sequence_length=None):
    """Floating-point operations of one training step of one micro-batch: the forward pass
    costs 2 per multiply-add of every matrix product — 2·(12 L C² + V C) per token for the
    weights, 2·2·L·T·C per token for QKᵀ and the weighted sum of V (all T keys; the causal
    half is what the fast path computes) — and the backward pass twice the forward's."""
    T = config.block_size if sequence_length is None else sequence_length
    L, C, V = config.n_layer, config.n_embd, config.vocab_size
    forward_per_token = 2 * (12 * L * C * C + V * C) + 4 * L * T * C
    return 3 * forward_per_token * batch_size * T


@dataclass
class MemoryLimit:
    """A bound on the memory a new allocation can get: ``available`` bytes, and ``source``,
    where it comes from (for messages: "MemAvailable", "cgroup memory.max less
    memory.current", ...)."""

    available: int
    source: str


def _read_number(path):
    """The integer in a one-line file (``memory.max``), None for 'max', a missing or
    unreadable file."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available(root):
    try:
        with open(os.path.join(root, "proc/meminfo"), encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    value, unit = line.split()[1:3]
                    return int(value) * {"kB": 1024, "mB": 2**20}.get(unit, 1)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return None


def _cgroup_folders(root):
    """(version, folder) of each cgroup hierarchy that controls this process's memory,
    innermost first, read from ``proc/self/cgroup`` under ``root``: cgroup v2's unified
    hierarchy (``0::/path``) and cgroup v1's memory controller (``N:memory:/path``). The
    folders of every ancestor follow, since a limit set higher up binds too. Where the
    process's own folder is not visible (a container without a cgroup namespace), the
    mount's top folder stands for it."""
    try:
        with open(os.path.join(root, "proc/self/cgroup"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    folders = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            version, mount = 2, os.path.join(root, "sys/fs/cgroup")
        elif "memory" in controllers.split(","):
            version, mount = 1, os.path.join(root, "sys/fs/cgroup/memory")
        else:
            continue
        relative = path.strip("/")
        if relative and not os.path.isdir(os.path.join(mount, relative)):
            relative = ""
        while True:
            folders.append((version, os.path.join(mount, relative)))
            if not relative:
                break
            relative = os.path.dirname(relative)
    return folders


#: cgroup v1 reports "no limit" as a number near 2**63.
_NO_LIMIT = 2**60


def _cgroup_available(root):
    """The tightest cgroup limit less the memory the cgroup uses, and its description."""
    best = None
    for version, folder in _cgroup_folders(root):
        names = (("memory.max", "memory.current") if version == 2 else
                 ("memory.limit_in_bytes", "memory.usage_in_bytes"))
        limit, used = (_read_number(os.path.join(folder, name)) for name in names)
        if limit is None or limit >= _NO_LIMIT:
            continue
        free = max(limit - (used or 0), 0)
        if best is None or free < best.available:
            best = MemoryLimit(free, f"cgroup v{version} {names[0]} {format_bytes(limit)} "
                                     f"less {names[1]}")
    return best


def _address_space_available(root):
    """RLIMIT_AS (``ulimit -v``) less the address space this process already uses
    (``VmSize``): the memory it may still map, whatever the machine has free."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    try:
        with open(os.path.join(root, "proc/self/status"), encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return MemoryLimit(max(soft - used, 0), f"RLIMIT_AS (ulimit -v) {format_bytes(soft)} "
                                            f"less the {format_bytes(used)} this process maps")


def memory_limits(root="/"):
    """Every bound on the CPU memory a new allocation can get, as :class:`MemoryLimit`:
    ``MemAvailable`` of ``/proc/meminfo`` (what the machine can give without swapping),
    RLIMIT_AS less the address space in use, and each cgroup limit (v2 ``memory.max``,
    v1 ``memory.limit_in_bytes``) less the cgroup's use. ``root`` is where ``proc/`` and
    ``sys/fs/cgroup/`` are read from: ``/``, or a folder of fixtures in tests."""
    limits = []
    meminfo = _meminfo_available(root)
    if meminfo is not None:
        limits.append(MemoryLimit(meminfo, "MemAvailable"))
    for limit in (_address_space_available(root), _cgroup_available(root)):
        if limit is not None:
            limits.append(limit)
    return limits


def memory_limit(device="cpu", root="/"):
    """The tightest :class:`MemoryLimit` for ``device``: the smallest of
    :func:`memory_limits` on the CPU, the current GPU's free memory for ``"cuda"``; None
    where nothing says."""
    if device == "cuda":
        try:
            from scratchlm import backend

            free, _ = backend.xp_for("cuda").cuda.runtime.memGetInfo()
            return MemoryLimit(int(free), "GPU")
        except Exception:  # no CuPy or no driver: the device check reports it
            return None
    return min(memory_limits(root), key=lambda limit: limit.available, default=None)


def available_memory(device="cpu", root="/"):
    """Bytes a new allocation can get (:func:`memory_limit`'s), or None where nothing
    says."""
    limit = memory_limit(device, root)
    return None if limit is None else limit.available


def fitting_batch_size(config, batch_size, available, sequence_length=None):
    """The largest batch size, halving from ``batch_size``, whose estimate fits in
    ``available`` bytes; None when not even a batch of one does."""
    size = batch_size // 2
    while size >= 1:
        if estimate_gpt_training(config, size, sequence_length).total <= available:
            return size
        size //= 2
    return None


def format_bytes(count):
    """``count`` bytes in binary units: '812 KiB', '1.4 GiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.0f} {unit}" if abs(value) >= 100 else f"{value:.1f} {unit}"


def process_rss(status="/proc/self/status"):
    """(current, peak) resident memory of this process in bytes (``VmRSS``, ``VmHWM``), or
    None where ``/proc`` does not exist."""
    values = {}
    try:
        with open(status, encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        return None
    if len(values) != 2:
        return None
    return values["VmRSS"], values["VmHWM"]


__all__ = ["MemoryEstimate", "MemoryLimit", "OVERHEAD_BYTES", "activation_values_per_token",
           "available_memory", "bert_parameter_count", "estimate_bert_pretraining",
           "estimate_gpt_training", "fitting_batch_size", "format_bytes",
           "gpt_parameter_count", "memory_limit", "memory_limits", "process_rss",
           "training_flops"]
