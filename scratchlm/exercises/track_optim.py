"""Track 4: optimization. Each update rule is a pure function (new arrays out, inputs left
alone), graded over several steps against the hidden reference, the schedule over the
steps where it changes form, clipping on gradients above, below and at zero norm."""

import numpy as np

from scratchlm.exercises.errors import CaseFailure
from scratchlm.exercises.runner import attempt
from scratchlm.exercises.tasks import Task, TaskCase, function_stub

OPTIM = "scratchlm.optim."


def _run_sgd(student, inputs, config):
    param, grads = inputs
    velocity, history = np.zeros_like(param), []
    for t, grad in enumerate(grads, start=1):
        result = attempt(f"step {t}", student, param, grad, velocity, **config)
        param, velocity = _pair(result, 2, "(param, velocity)")[:2]
        history.append(np.array(param, dtype=np.float64))
    return history


def _run_adam(student, inputs, config):
    param, grads = inputs
    m, v, history = np.zeros_like(param), np.zeros_like(param), []
    for t, grad in enumerate(grads, start=1):
        result = attempt(f"step {t}", student, param, grad, m, v, t, **config)
        param, m, v = _pair(result, 3, "(param, m, v)")
        history.append(np.array(param, dtype=np.float64))
    return history


def _pair(result, n, what):
    if not isinstance(result, (tuple, list)) or len(result) != n:
        raise CaseFailure(f"it should return {what}, got {type(result).__name__}")
    return tuple(np.asarray(r, dtype=np.float64) for r in result)


def _trajectory(shape, steps):
    return lambda rng: (rng.standard_normal(shape), [rng.standard_normal(shape)
                                                     for _ in range(steps)])


def _steps_label(shape, steps, config):
    return f"param {shape}, {steps} steps" + "".join(f", {k}={v!r}" for k, v in config.items())


def _cases(specs):
    return tuple(TaskCase(_steps_label(shape, steps, config), _trajectory(shape, steps), config)
                 for shape, steps, config in specs)


def _steps(boundaries, end):
    """The steps where the schedule changes form, and four more drawn below ``end``, in a
    drawn order."""
    def make(rng):
        steps = np.array(boundaries + [int(s) for s in rng.integers(0, end, size=4)])
        return ([int(s) for s in rng.permutation(steps)],)
    return make


def _run_schedule(student, inputs, config):
    (steps,) = inputs
    return [float(attempt(f"step {s}", student, s, **config)) for s in steps]


def _run_clip(student, inputs, config):
    grads, max_norm = inputs
    result = attempt("clip_grad_norm", student, grads, max_norm)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CaseFailure("it should return (clipped gradients, total norm)")
    clipped, total = result
    return ([np.asarray(g, dtype=np.float64) for g in clipped], float(total))


ADAM_DOC = ("One Adam step from the paper; returns (param, m, v), new arrays.\n\n"
            "    t counts steps from 1; weight_decay adds weight_decay * param to the "
            "gradient.")

TASKS = [
    Task(
        name="sgd_momentum", title="SGD with momentum (and Nesterov)", track=4, points=3,
        formula="d = g + λθ;  b ← μ b + d;  θ ← θ − η (d + μ b if nesterov else b)",
        task="Write one step: return the new parameter and velocity b (start: zeros) as new "
             "arrays. The grader runs several steps, feeding your b back.",
        hints=("Weight decay is added to the gradient before the momentum.",
               "With b starting at zeros, the first step's b is d.",
               "Nesterov looks ahead: step with d + μ·b, the b just updated."),
        entry="sgd_step",
        stub=function_stub("sgd_step(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, "
                           "nesterov=False)", "One SGD step; returns (param, velocity)."),
        solution="optimization:sgd_step", run=_run_sgd, input_names=("param", "grads"),
        library=(OPTIM + "sgd.SGD.update_parameter",),
        cases=_cases([((3, 4), 4, {"lr": 0.1, "momentum": 0.9}),
                      ((5,), 3, {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
                      ((2, 2), 4, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
                      ((1,), 2, {"lr": 0.3})])),
    Task(
        name="adam", title="Adam from the paper", track=4, points=4,
        formula="m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  m̂ = m/(1−β₁ᵗ);  v̂ = v/(1−β₂ᵗ);  "
                "θ ← θ − η m̂/(√v̂ + ε)   (g includes λθ when weight_decay > 0)",
        task="Write one step, t counted from 1; return (param, m, v) as new arrays.",
        hints=("Bias correction divides by 1 − βᵗ with t the step number, starting at 1.",
               "ε is added to √v̂, after the square root.",
               "Adam's weight decay is L2: add λθ to g before the moments."),
        entry="adam_step",
        stub=function_stub("adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, "
                           "eps=1e-8, weight_decay=0.0)", ADAM_DOC),
        solution="optimization:adam_step", run=_run_adam, input_names=("param", "grads"),
        library=(OPTIM + "adam.Adam.update_parameter",),
        cases=_cases([((3, 4), 3, {"lr": 0.01}),
                      ((5,), 4, {"lr": 0.1, "beta1": 0.5, "beta2": 0.9}),
                      ((2, 3), 3, {"lr": 0.01, "weight_decay": 0.1}),
                      ((1,), 1, {"lr": 1.0, "eps": 1e-3})])),
    Task(
        name="adamw", title="AdamW: decoupled weight decay", track=4, points=3,
        formula="θ ← θ (1 − ηλ), then the Adam step with the raw gradient g",
        task="Write one AdamW step; it differs from Adam only in where weight decay acts.",
        hints=("Shrink θ by (1 − ηλ) first; λθ is not added to the gradient.",
               "The moments see the raw gradient only."),
        entry="adamw_step",
        stub=function_stub("adamw_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, "
                           "eps=1e-8, weight_decay=0.01)",
                           "One AdamW step; returns (param, m, v), new arrays."),
        solution="optimization:adamw_step", run=_run_adam, input_names=("param", "grads"),
        library=(OPTIM + "adam.Adam.update_parameter",),
        cases=_cases([((3, 4), 3, {"lr": 0.01}),
                      ((5,), 4, {"lr": 0.1, "weight_decay": 0.5}),
                      ((2, 2), 2, {"lr": 0.05, "weight_decay": 0.0})])),
    Task(
        name="warmup_cosine", title="Linear warmup, then cosine decay", track=4, points=2,
        formula="lr(s) = max_lr (s+1)/(W+1) for s < W;  min_lr + ½(1 + cos(π (s−W)/(S−W)))"
                "(max_lr − min_lr) for W ≤ s < S;  min_lr for s ≥ S",
        task="Write lr(step) for warmup W = warmup_steps and S = total_steps.",
        hints=("Step W gives exactly max_lr, step S and later exactly min_lr.",
               "With W = 0 there is no warmup: the cosine starts at step 0."),
        entry="warmup_cosine",
        stub=function_stub("warmup_cosine(step, max_lr, warmup_steps, total_steps, min_lr)",
                           "The learning rate at ``step``.", imports="import math\n"),
        solution="optimization:warmup_cosine", run=_run_schedule,
        library=(OPTIM + "lr_scheduler.warmup_cosine_lr",),
        cases=(TaskCase("W=10, S=100, steps 0–120",
                        _steps([0, 1, 9, 10, 11, 99, 100, 120], 121),
                        {"max_lr": 1e-3, "warmup_steps": 10, "total_steps": 100,
                         "min_lr": 1e-4}),
               TaskCase("no warmup", _steps([0, 1, 3, 4, 5], 9),
                        {"max_lr": 0.5, "warmup_steps": 0, "total_steps": 4, "min_lr": 0.0}),
               TaskCase("warmup to the end", _steps([0, 3, 4, 5], 9),
                        {"max_lr": 2.0, "warmup_steps": 4, "total_steps": 4,
                         "min_lr": 0.1}))),
    Task(
        name="clip_grad_norm", title="Gradient clipping by global norm", track=4, points=3,
        formula="N = √(Σ over every array of Σ g²);  if max_norm/(N + 1e-6) < 1, every g ← g · "
                "max_norm/(N + 1e-6)",
        task="Return (the clipped gradients as new arrays, N before clipping).",
        hints=("One norm over all the arrays together, not one per array.",
               "Gradients under the limit are returned unchanged; the 1e-6 keeps N = 0 "
               "from dividing by zero."),
        entry="clip_grad_norm",
        stub=function_stub("clip_grad_norm(grads, max_norm)",
                           "Clip the list ``grads`` to global norm ``max_norm``; returns "
                           "(clipped, total_norm).", imports="import math\n\nimport numpy as np\n"),
        solution="optimization:clip_grad_norm", run=_run_clip, input_names=("grads",),
        library=(OPTIM + "clip.clip_grad_norm_",), output_names=("clipped", "total norm"),
        cases=(TaskCase("above the limit, three shapes",
                        lambda rng: ([rng.standard_normal(s) * 3 for s in [(3, 4), (5,), ()]],
                                     1.0)),
               TaskCase("under the limit", lambda rng: ([rng.standard_normal((2, 2)) * 0.1],
                                                        5.0)),
               TaskCase("all zero", lambda rng: ([np.zeros(int(rng.integers(1, 5))),
                                                  np.zeros(tuple(rng.integers(1, 4, size=2)))],
                                                 round(float(rng.uniform(0.5, 2.0)), 3))))),
]
