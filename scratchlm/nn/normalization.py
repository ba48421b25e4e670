"""``LayerNorm``: normalize each position's features to zero mean and unit variance."""

from scratchlm import functional as F
from scratchlm.checks import check_int, check_real
from scratchlm.errors import ArgumentError
from scratchlm.nn import init
from scratchlm.nn.module import Module, Parameter


class LayerNorm(Module):
    """y = (x − μ) / √(σ² + eps) · γ + β over the last axis (μ, σ² that axis' mean and
    biased variance), with ``weight`` γ and ``bias`` β of shape (normalized_shape,).

    Init, as PyTorch's: γ = 1, β = 0 (the identity after normalizing).
    """

    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ArgumentError(f"LayerNorm: normalizes over the last axis only, so "
                                    f"normalized_shape must be an int or a 1-tuple, got "
                                    f"{tuple(normalized_shape)}", where="LayerNorm",
                                    name="normalized_shape", value=normalized_shape)
            normalized_shape = normalized_shape[0]
        normalized_shape = check_int("LayerNorm", "normalized_shape", normalized_shape, 1,
                                     hint="(the width of the last axis)")
        check_real("LayerNorm", "eps", eps, 0, low_open=True,
                   hint="(added to the variance, e.g. 1e-5)")
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(init.ones((normalized_shape,)))
        self.bias = Parameter(init.zeros((normalized_shape,)))

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
