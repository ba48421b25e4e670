"""Stochastic gradient descent, with momentum, Nesterov momentum and L2 weight decay.

For each parameter θ with gradient g, as ``torch.optim.SGD`` computes it:

    g ← g + λθ                          weight decay λ (L2: the gradient of ½λ‖θ‖²)
    b ← g                               on the first step, then
    b ← μb + (1 − τ)g                   momentum μ, dampening τ
    g ← g + μb   (Nesterov)   or   g ← b
    θ ← θ − ηg                          learning rate η

With μ = 0 it is plain gradient descent, θ ← θ − η ∂J/∂θ.
"""

from scratchlm.checks import check_real
from scratchlm.optim.optimizer import Optimizer


class SGD(Optimizer):
    STATE_KEYS = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
                 dampening=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_hyperparameters(self, group, where):
        check_real(where, "lr", group["lr"], 0)
        check_real(where, "momentum", group["momentum"], 0)
        check_real(where, "dampening", group["dampening"], 0, 1)
        check_real(where, "weight_decay", group["weight_decay"], 0)
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError(f"{where}: nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")

    def update_parameter(self, param, grad, state, group):
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay:
            grad = grad + weight_decay * param                 # g + λθ
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()         # b = g on the first step
            else:
                buffer = state["momentum_buffer"]
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad      # b = μb + (1 − τ)g
            buffer = state["momentum_buffer"]
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param -= group["lr"] * grad                            # θ − ηg
