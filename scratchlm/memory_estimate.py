"""How much memory a GPT training run needs, worked out before the model is built, and how
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


def training_flops(config, batch_size, sequence_length=None):
    """Floating-point operations of one training step of one micro-batch: the forward pass
    costs 2 per multiply-add of every matrix product — 2·(12 L C² + V C) per token for the
    weights, 2·2·L·T·C per token for QKᵀ and the weighted sum of V (all T keys; the causal
    half is what the fast path computes) — and the backward pass twice the forward's."""
    T = config.block_size if sequence_length is None else sequence_length
    L, C, V = config.n_layer, config.n_embd, config.vocab_size
    forward_per_token = 2 * (12 * L * C * C + V * C) + 4 * L * T * C
    return 3 * forward_per_token * batch_size * T


def available_memory(device="cpu", meminfo="/proc/meminfo"):
    """Bytes a new allocation can get without swapping: ``MemAvailable`` of
    ``/proc/meminfo`` on the CPU, the free memory of the current GPU for ``"cuda"``; None
    where the system does not say."""
    if device == "cuda":
        try:
            from scratchlm import backend

            free, _ = backend.xp_for("cuda").cuda.runtime.memGetInfo()
            return int(free)
        except Exception:  # no CuPy or no driver: the device check reports it
            return None
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    value, unit = line.split()[1:3]
                    return int(value) * {"kB": 1024, "mB": 2**20}.get(unit, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


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


__all__ = ["MemoryEstimate", "OVERHEAD_BYTES", "activation_values_per_token",
           "available_memory", "estimate_gpt_training", "fitting_batch_size", "format_bytes",
           "gpt_parameter_count", "process_rss", "training_flops"]
