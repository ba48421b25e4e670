"""Adam and AdamW, with the same arithmetic as ``torch.optim.Adam`` / ``AdamW``.

For each parameter θ with gradient g, at its step t = 1, 2, …:

    θ ← θ(1 − ηλ)                               AdamW only: decoupled weight decay
    g ← g + λθ                                  Adam only: L2 decay added to the gradient
    m ← β₁m + (1 − β₁)g                         first moment (a running mean of g)
    v ← β₂v + (1 − β₂)g²                        second moment (a running mean of g²)
    θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

The two bias corrections undo the pull of m and v towards their zero start. As torch does,
m is updated as m + (1 − β₁)(g − m) (``lerp``), and the last line divides √v by
√(1 − β₂ᵗ) rather than v by (1 − β₂ᵗ); float32 results agree with torch's to rounding.
"""

import math

from scratchlm.backend import get_array_module
from scratchlm.checks import check_real
from scratchlm.errors import ArgumentError
from scratchlm.optim.optimizer import Optimizer


class Adam(Optimizer):
    STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_hyperparameters(self, group, where):
        check_real(where, "lr", group["lr"], 0)
        check_real(where, "eps", group["eps"], 0, low_open=True,
                   hint="(added to √v so the step never divides by 0, e.g. 1e-8)")
        check_real(where, "weight_decay", group["weight_decay"], 0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ArgumentError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}",
                                where=where, name="betas", value=betas)
        check_real(where, "betas[0]", betas[0], 0, 1, high_open=True)
        check_real(where, "betas[1]", betas[1], 0, 1, high_open=True)

    def initial_state(self, param):
        xp = get_array_module(param)
        return {"step": 0, "exp_avg": xp.zeros_like(param), "exp_avg_sq": xp.zeros_like(param)}

    def update_parameter(self, param, grad, state, group):
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if self.decoupled_weight_decay:
            param *= 1 - lr * weight_decay                # θ(1 − ηλ)
        elif weight_decay:
            grad = grad + weight_decay * param            # g + λθ
        m += (1 - beta1) * (grad - m)                     # β₁m + (1 − β₁)g
        v *= beta2
        v += (1 - beta2) * grad * grad                    # β₂v + (1 − β₂)g²
        denominator = get_array_module(v).sqrt(v) / math.sqrt(1 - beta2 ** t) + group["eps"]
        param -= lr / (1 - beta1 ** t) * m / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ shrinks by the factor
    (1 − ηλ) before the Adam step instead of λθ being added to the gradient."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
