"""LoRA (Hu et al., 2021) as peft defines it: ``LoRALinear``, ``apply_lora``, merging, saving.

    y = W x + b + (α/r) · B (A dropout(x)),    A (r, in), B (out, r)

B starts at zero, so the adapted model starts exactly equal to the base; A starts as peft
initializes it, Kaiming-uniform with a = √5: U(−bound, bound), bound = gain·√(3/in),
gain = √(2/(1 + a²)) = √(1/3), i.e. bound = 1/√in. Only A and B train (and any module named
in ``modules_to_save``, such as a new classification head); W and b stay frozen.

``merge_lora`` folds the update into the weight, W ← W + (α/r)·BA, so inference costs
nothing extra; ``unmerge_lora`` puts the original weight back (kept aside while merged, so
it comes back bit-identical).
"""

import math
import re

import numpy as np

from scratchlm import backend, checkpoint
from scratchlm.checks import bad_argument, check_int, check_real
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.functional.lora import lora_linear
from scratchlm.nn import init
from scratchlm.nn.linear import Linear
from scratchlm.nn.module import Module, Parameter
from scratchlm.peft.freezing import _matches

SQRT_5 = math.sqrt(5)


def kaiming_uniform_bound(fan_in, a=SQRT_5):
    """The bound of PyTorch's ``kaiming_uniform_(w, a)`` (leaky-ReLU gain), as peft's A."""
    gain = math.sqrt(2.0 / (1 + a * a))
    return gain * math.sqrt(3.0 / fan_in)


class LoRALinear(Module):
    """A ``Linear`` with a low-rank trainable update (see the module docstring).

    ``weight`` and ``bias`` are the base layer's own Parameters (same names, so a base
    state dict still loads), frozen; ``lora_A`` (r, in) and ``lora_B`` (out, r) train.
    """

    def __init__(self, base, r=8, alpha=16, dropout=0.0):
        super().__init__()
        if not isinstance(base, Linear):
            raise ArgumentTypeError(f"LoRALinear: wraps an nn.Linear, got {type(base).__name__}")
        r, alpha, dropout = check_lora_settings("LoRALinear", r, alpha, dropout)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.scaling = alpha / r
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        device, dtype = base.weight.device, base.weight.dtype
        bound = kaiming_uniform_bound(self.in_features)
        a = init.uniform((r, self.in_features), bound).astype(dtype)
        b = np.zeros((self.out_features, r), dtype=dtype)
        self.lora_A = Parameter(backend.to_device(a, device))
        self.lora_B = Parameter(backend.to_device(b, device))
        self.merged = False
        self._weight_before_merge = None

    def forward(self, x):
        if self.merged:
            from scratchlm import functional as F
            return F.linear(x, self.weight, self.bias)
        return lora_linear(x, self.weight, self.lora_A, self.lora_B, self.bias,
                           scaling=self.scaling, dropout_p=self.dropout, training=self.training)

    def delta_weight(self):
        """ΔW = (α/r)·B A, an array of the weight's shape."""
        return self.scaling * (self.lora_B.data @ self.lora_A.data)

    def merge(self):
        if self.merged:
            return
        self._weight_before_merge = self.weight.data.copy()
        self.weight.data = self.weight.data + self.delta_weight().astype(self.weight.dtype)
        self.weight.bump_version()
        self.merged = True

    def unmerge(self):
        if not self.merged:
            return
        self.weight.data = self._weight_before_merge
        self._weight_before_merge = None
        self.weight.bump_version()
        self.merged = False

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"r={self.r}, alpha={self.alpha}, dropout={self.dropout}, merged={self.merged}")


def check_lora_settings(where, r, alpha, dropout):
    """(r, alpha, dropout) checked: r an integer ≥ 1, alpha a finite number, dropout in
    [0, 1)."""
    return (check_int(where, "r", r, 1, hint="(the adapter's rank)"),
            check_real(where, "alpha", alpha, hint="(the scale is alpha / r)"),
            check_real(where, "dropout", dropout, 0, 1, high_open=True))


def _parent(model, dotted):
    *path, leaf = dotted.split(".")
    module = model
    for part in path:
        module = module._modules[part]
    return module, leaf


def _target_names(model, target_modules):
    """Dotted names of the Linear layers to adapt: ``target_modules`` a list of names that
    end the module's name (``"c_attn"`` matches ``transformer.h.0.attn.c_attn``), or one
    string taken as a regular expression over the whole name (as peft does)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, Linear) and name]
    if not isinstance(target_modules, str) and not (
            hasattr(target_modules, "__iter__")
            and all(isinstance(t, str) for t in target_modules)):
        raise bad_argument("apply_lora", "target_modules", target_modules, "a list of layer "
                           "names (['c_attn']) or one regular expression (a str)",
                           error=ArgumentTypeError)
    if isinstance(target_modules, str):
        chosen = [n for n in linears if re.fullmatch(target_modules, n)]
    else:
        targets = list(target_modules)
        chosen = [n for n in linears if any(n == t or n.endswith("." + t) for t in targets)]
    if not chosen:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linears})
        raise ArgumentError(f"apply_lora: no Linear layer of {type(model).__name__} matches "
                            f"target_modules={target_modules!r}; its Linear layers end in "
                            f"{suffixes}")
    return chosen


def apply_lora(model, target_modules, r=8, alpha=16, dropout=0.0, modules_to_save=()):
    """Swap the matching ``Linear`` layers of ``model`` for :class:`LoRALinear` (in place)
    and freeze everything else; parameters under ``modules_to_save`` (e.g. ``"classifier"``)
    stay trainable. Returns the model. Tied Linear layers (GPT's ``lm_head``) are refused.
    Every argument is checked before the model changes."""
    if not isinstance(model, Module):
        raise bad_argument("apply_lora", "model", model, "an nn.Module",
                           error=ArgumentTypeError)
    check_lora_settings("apply_lora", r, alpha, dropout)
    names = _target_names(model, target_modules)
    tied = {id(p) for _, m in model.named_modules() if not isinstance(m, Linear)
            for p in m._parameters.values() if p is not None}
    model.requires_grad_(False)
    for name in names:
        parent, leaf = _parent(model, name)
        base = parent._modules[leaf]
        if id(base.weight) in tied:
            raise ArgumentError(f"apply_lora: {name}'s weight is tied to another module's "
                                "parameter (an embedding); leave it out of target_modules")
        setattr(parent, leaf, LoRALinear(base, r=r, alpha=alpha, dropout=dropout))
    for name, parameter in model.named_parameters():
        if name.endswith((".lora_A", ".lora_B")) or (modules_to_save
                                                     and _matches(name, modules_to_save)):
            parameter.requires_grad_(True)
    model._lora_config = dict(target_modules=target_modules if isinstance(target_modules, str)
                              else list(target_modules), r=r, alpha=alpha, dropout=dropout,
                              modules_to_save=list(modules_to_save))
    return model


def lora_layers(model):
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model):
    """Fold every adapter into its weight (W ← W + (α/r)·BA); returns the model."""
    for layer in lora_layers(model):
        layer.merge()
    return model


def unmerge_lora(model):
    """Undo :func:`merge_lora`: every weight back to the one before merging."""
    for layer in lora_layers(model):
        layer.unmerge()
    return model


def adapter_state_dict(model):
    """The trainable arrays only (A, B and the ``modules_to_save``), by dotted name."""
    return {name: np.array(backend.to_numpy(p.data), copy=True)
            for name, p in model.named_parameters() if p.requires_grad}


def save_lora(model, path, base):
    """Write an adapter checkpoint: the trainable arrays, the LoRA settings, and ``base``
    (the pre-trained run it adapts, e.g. ``runs/bert-zh-small``). Not the frozen weights."""
    config = getattr(model, "_lora_config", None)
    if config is None:
        raise ArgumentError("save_lora: the model has no LoRA layers; call apply_lora first")
    checkpoint.save({"adapter": adapter_state_dict(model), "lora_config": config,
                     "base": str(base)}, path)


def load_lora(model, path):
    """Load an adapter checkpoint into a model that :func:`apply_lora` adapted with the same
    settings; returns the checkpoint's ``base``."""
    state = checkpoint.load(path)
    named = dict(model.named_parameters())
    missing = [name for name in state["adapter"] if name not in named]
    if missing:
        raise ArgumentError(f"load_lora: {path} holds {missing[:4]}, which the model lacks; "
                            f"apply_lora with {state['lora_config']} first")
    for name, array in state["adapter"].items():
        if named[name].shape != array.shape:
            raise ArgumentError(f"load_lora: {name} has shape {array.shape} in {path}, "
                                f"{named[name].shape} in the model")
    for name, array in state["adapter"].items():
        target = named[name]
        target.data = backend.to_device(array.astype(target.dtype), target.device)
        target.bump_version()
    return state["base"]
