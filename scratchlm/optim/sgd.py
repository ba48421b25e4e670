"""Stochastic gradient descent, with momentum, Nesterov momentum and L2 weight decay.

For each parameter θ with gradient g, as ``torch.optim.SGD`` computes it:

    g ← g + λθ                          weight decay λ (L2: the gradient of ½λ‖θ‖²)
    b ← g                               on the first step, then
    b ← μb + (1 − τ)g                   momentum μ, dampening τ
    g ← g + μb   (Nesterov)   or   g ← b
    θ ← θ − ηg                          learning rate η

With μ = 0 it is plain gradient descent, θ ← θ − η ∂J/∂θ.
"""

from scratchlm.backend import get_array_module
from scratchlm.optim.optimizer import Optimizer, check_range


class SGD(Optimizer):
    STATE_KEYS = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
                 dampening=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_hyperparameters(self, group, where):
        check_range(where, "lr", group["lr"], 0.0)
        check_range(where, "momentum", group["momentum"], 0.0)
        check_range(where, "dampening", group["dampening"], 0.0, 1.0, high_inclusive=True)
        check_range(where, "weight_decay", group["weight_decay"], 0.0)
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError(f"{where}: nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")

    def update_parameter(self, param, grad, state, group):
        xp = get_array_module(param)
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        first_step = momentum != 0 and "momentum_buffer" not in state
        if first_step:
            state["momentum_buffer"] = xp.empty(param.shape, param.dtype)
        buffers = (state["momentum_buffer"],) if momentum != 0 else ()
        def update(work, tmp, p, g, *buffer):
            if weight_decay != 0:
                xp.multiply(p, weight_decay, out=work)
                work += g                           # g + λθ
                g = work
            if momentum != 0:
                (b,) = buffer
                if first_step:
                    b[...] = g                      # b = g
                else:
                    b *= momentum
                    xp.multiply(g, 1 - group["dampening"], out=tmp)
                    b += tmp                        # b = μb + (1 − τ)g
                if group["nesterov"]:
                    xp.multiply(b, momentum, out=tmp)
                    tmp += g                        # g + μb
                    g = tmp
                else:
                    g = b
            xp.multiply(g, -lr, out=tmp)
            p += tmp                                # θ − ηg
        self.for_each_piece(update, param, grad, *buffers)
