"""``Dropout``: zero activations at random while training."""

from scratchlm import functional as F
from scratchlm.checks import check_real
from scratchlm.errors import ArgumentError
from scratchlm.nn.module import Module


class Dropout(Module):
    """In training mode each entry is zeroed with probability ``p`` and the rest are scaled
    by 1/(1 − p), so the expected value is unchanged; in eval mode it is the identity."""

    def __init__(self, p=0.5):
        super().__init__()
        check_real("Dropout", "p", p, hint="(a probability)")
        if not 0.0 <= p <= 1.0:
            raise ArgumentError(f"Dropout: p={p} is not a probability; expected 0 ≤ p ≤ 1",
                                where="Dropout", name="p", value=p)
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"
