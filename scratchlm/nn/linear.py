"""``Linear``: y = x Wᵀ + b, the affine map every Transformer is mostly made of."""

import math

from scratchlm import functional as F
from scratchlm.checks import check_bool, check_int
from scratchlm.nn import init
from scratchlm.nn.module import Module, Parameter


class Linear(Module):
    """y = x Wᵀ + b over the last axis of x, with ``weight`` W of shape (out, in) and
    ``bias`` b of shape (out,) (or no bias).

    Init, as PyTorch's: W and b from U(−1/√in, 1/√in), which keeps the variance of y close to
    the variance of x divided by 3 whatever the width.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        in_features = check_int("Linear", "in_features", in_features, 1)
        out_features = check_int("Linear", "out_features", out_features, 1)
        bias = check_bool("Linear", "bias", bias)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(init.uniform((out_features, in_features), bound))
        self.bias = Parameter(init.uniform((out_features,), bound)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
