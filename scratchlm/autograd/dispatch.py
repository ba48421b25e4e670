"""The one hook through which faster code may run in place of the reference.

Three things have a reference implementation and may have a faster one: an op (a
:class:`~scratchlm.autograd.function.Function` subclass), the backward pass
(:func:`~scratchlm.autograd.engine.run_backward`) and an optimizer's update rule (its
``update_parameter`` method, looked up as a function). Each asks
``dispatch.faster(reference, device)`` before it runs; ``None`` means the reference runs.

Here the answer is always ``None``. The fast layer (:mod:`scratchlm.fast`), when it is
imported, sets :data:`faster` to its registry's look-up. So the arrow runs one way:
``scratchlm.fast`` imports this module; autograd and the optimizers never import the fast
layer, and without it they run their reference code unchanged.
"""


def reference_only(reference, device):
    """No faster version of anything: the reference runs everywhere."""
    return None


#: ``faster(reference, device)``: the faster class (or function) registered for exactly
#: ``reference`` on ``device`` ("cpu" or "cuda"), or None. Read it as ``dispatch.faster``
#: at call time, since the fast layer replaces it.
faster = reference_only
