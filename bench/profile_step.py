"""Where a GPT train step's time goes: per-Function forward/backward times, or cProfile.

    python bench/profile_step.py [--config medium] [--steps 5] [--threads N] [--cprofile]

The default wraps every ``Function`` subclass's ``forward`` and ``backward`` with a timer
and prints milliseconds per step for each, next to the step's phases (forward, backward,
AdamW step, zero_grad): what is left of a phase after its ops is the engine's and the
layers' own Python. ``--cprofile`` instead prints cProfile's top functions by their own
time (NumPy's calls show up as the ``{method …}`` / ``{built-in …}`` entries).
``--cpu-time`` times with the process's CPU time instead of the wall clock: on a machine
that other jobs share, a one-thread profile then does not count the time it waited.
``--phases`` times only the phases, with no timer around the ops, and prints each phase's
median over the steps: run it in two checkouts, alternated, to compare them.
"""

import argparse
import collections
import cProfile
import functools
import pstats
import statistics
import time

import harness


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


clock = time.perf_counter


def time_functions(totals):
    """Wrap forward/backward of every Function subclass so each call adds its seconds to
    ``totals[(class name, method)]``."""
    from scratchlm.autograd.function import Function

    def timed(method, key):
        @functools.wraps(method)
        def wrapper(*args):
            start = clock()
            try:
                return method(*args)
            finally:
                totals[key] += clock() - start
        return wrapper

    for cls in set(all_subclasses(Function)):
        for name in ("forward", "backward"):
            if name in cls.__dict__:
                setattr(cls, name, timed(cls.__dict__[name], (cls.__name__, name)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="medium")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--cpu-time", action="store_true")
    parser.add_argument("--phases", action="store_true",
                        help="no op timers: each phase's median ms over the steps")
    args = parser.parse_args()
    global clock
    if args.cpu_time:
        clock = time.process_time
    harness.thread_environment(args.threads)
    harness.use_repository()
    harness.limit_threads(args.threads)
    import run  # the benchmark's configs and model setup

    model, optimizer, (idx, targets) = run.scratchlm_setup(args.config, "cpu")
    phases = collections.Counter()
    per_step_phases = collections.defaultdict(list)

    def step():
        marks = [clock()]
        _, loss = model(idx, targets)
        marks.append(clock())
        loss.backward()
        marks.append(clock())
        optimizer.step()
        marks.append(clock())
        optimizer.zero_grad()
        marks.append(clock())
        for name, start, end in zip(("forward", "backward", "adamw", "zero_grad"),
                                    marks, marks[1:]):
            phases[name] += end - start
            per_step_phases[name].append(end - start)

    for _ in range(2):  # warm-up: optimizer state, allocator
        step()
    phases.clear()
    per_step_phases.clear()
    if args.phases:
        for _ in range(args.steps):
            step()
        print(f"{args.config}, {args.threads} threads, medians of {args.steps} steps: " + ", ".join(
            f"{name} {1e3 * statistics.median(times):.2f} ms"
            for name, times in per_step_phases.items()))
        return
    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [step() for _ in range(args.steps)])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    totals = collections.Counter()
    time_functions(totals)
    for _ in range(args.steps):
        step()
    per_step = {k: 1e3 * v / args.steps for k, v in totals.items()}
    print(f"{args.config}: ms per train step ({args.steps} steps, {args.threads} threads)")
    for phase in ("forward", "backward", "adamw", "zero_grad"):
        in_ops = sum(v for (_, m), v in per_step.items() if m == phase)
        print(f"  {phase:>9} {1e3 * phases[phase] / args.steps:8.1f}"
              + (f"   (ops {in_ops:.1f})" if phase in ("forward", "backward") else ""))
    print(f"  {'total':>9} {1e3 * sum(phases.values()) / args.steps:8.1f}")
    print(f"{'Function':>28} {'forward':>8} {'backward':>9}")
    names = sorted({n for n, _ in per_step},
                   key=lambda n: -(per_step.get((n, "forward"), 0)
                                   + per_step.get((n, "backward"), 0)))
    for name in names:
        print(f"{name:>28} {per_step.get((name, 'forward'), 0):8.1f} "
              f"{per_step.get((name, 'backward'), 0):9.1f}")


if __name__ == "__main__":
    main()
