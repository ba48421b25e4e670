"""Adam and AdamW, with the same arithmetic as ``torch.optim.Adam`` / ``AdamW``.

For each parameter θ with gradient g, at its step t = 1, 2, …:

    θ ← θ(1 − ηλ)                               AdamW only: decoupled weight decay
    g ← g + λθ                                  Adam only: L2 decay added to the gradient
    m ← β₁m + (1 − β₁)g                         first moment (a running mean of g)
    v ← β₂v + (1 − β₂)g²                        second moment (a running mean of g²)
    θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

The two bias corrections undo the pull of m and v towards their zero start. m is updated as
m + (1 − β₁)(g − m) (torch's ``lerp``), and the last line is computed as

    θ ← θ + m / (√v + ε√(1 − β₂ᵗ)) · (−η√(1 − β₂ᵗ) / (1 − β₁ᵗ))

the same value with the bias correction of v moved into the two scalars (one pass over the
parameter fewer than dividing √v by it); float32 results agree with torch's to rounding. On
the GPU the whole update is one fused elementwise kernel per parameter
(``gpu_kernels.adam_update``); the array code below is its reference.
"""

from scratchlm.backend import get_array_module
from scratchlm.functional import gpu_kernels
from scratchlm.optim.optimizer import Optimizer, check_range


class Adam(Optimizer):
    STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_hyperparameters(self, group, where):
        check_range(where, "lr", group["lr"], 0.0)
        check_range(where, "eps", group["eps"], 0.0)
        check_range(where, "weight_decay", group["weight_decay"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range(where, "betas[0]", betas[0], 0.0, 1.0)
        check_range(where, "betas[1]", betas[1], 0.0, 1.0)

    def update_parameter(self, param, grad, state, group):
        xp = get_array_module(param)
        if not state:
            state.update(step=0, exp_avg=xp.zeros(param.shape, param.dtype),
                         exp_avg_sq=xp.zeros(param.shape, param.dtype))
        state["step"] += 1
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if gpu_kernels.fusable(param, grad, state["exp_avg"], state["exp_avg_sq"]):
            gpu_kernels.adam_update(param, grad, state["exp_avg"], state["exp_avg_sq"], lr=lr,
                                    beta1=beta1, beta2=beta2, eps=group["eps"],
                                    weight_decay=weight_decay,
                                    decoupled=self.decoupled_weight_decay, step=state["step"])
            return
        bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
        eps_scaled = group["eps"] * bias_correction2_sqrt           # ε√(1 − β₂ᵗ)
        step_scaled = -lr / (1 - beta1 ** state["step"]) * bias_correction2_sqrt

        def update(work, tmp, p, g, m, v):
            if weight_decay != 0 and self.decoupled_weight_decay:
                p *= 1 - lr * weight_decay          # θ(1 − ηλ)
            elif weight_decay != 0:
                xp.multiply(p, weight_decay, out=work)
                work += g                           # g + λθ
                g = work
            xp.subtract(g, m, out=tmp)
            tmp *= 1 - beta1
            m += tmp                                # m + (1 − β₁)(g − m)
            v *= beta2
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - beta2
            v += tmp                                # β₂v + (1 − β₂)g²
            xp.sqrt(v, out=tmp)
            tmp += eps_scaled
            xp.divide(m, tmp, out=tmp)
            tmp *= step_scaled
            p += tmp                                # θ + m/(√v + ε√(1 − β₂ᵗ)) · step
        self.for_each_piece(update, param, grad, state["exp_avg"], state["exp_avg_sq"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ shrinks by the factor
    (1 − ηλ) before the Adam step instead of λθ being added to the gradient."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
