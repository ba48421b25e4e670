"""How long a run will take: the fastest of a few measured steps before it starts, then
the steps it times itself as it goes, and whether other processes are using the cores.

A single timed step is a poor estimate on a shared machine: the first one starts BLAS's
threads and grows the allocator's pools (often several times slower than the rest), and
any one step may lose its cores to another process for a while. So
:func:`fastest_of` times a few steps after a warm-up and keeps the fastest, the step least
disturbed: what the run will do whenever it has its cores.

The machine may stay busy, though. :func:`core_use` measures how many cores other processes
kept busy over a short interval,

    others = (Δ busy time of every core − Δ this process's own CPU time) / Δ wall time,

from ``/proc/stat`` (or, where that is missing, the 1-minute load average less one for
this process), so the estimate can say so next to its figure. Then, once the run has
started, :class:`StepTimeEstimate` takes the median of the steps it has timed itself (the
last ``window`` of them): what the progress bar shows as the time left is the run's own
rate, refreshed every step.
"""

import os
import statistics
import time
from collections import deque
from dataclasses import dataclass

#: Other processes keeping at least this many cores busy are worth mentioning.
BUSY_CORES = 0.5


def fastest_of(run_step, repeats=3, warmup=1, budget_s=30.0, clock=time.perf_counter):
    """The fastest of ``repeats`` timed calls of ``run_step()`` (seconds), after ``warmup``
    untimed ones. A call slower than ``budget_s`` ends the measuring early (a run whose
    step takes minutes is not made to wait for several of them): that call's time is then
    the estimate, an upper bound. Returns ``(fastest, times)``, ``times`` every timed call."""
    if repeats < 1:
        raise ValueError(f"fastest_of: repeats={repeats}; expected at least 1")
    times = []
    for call in range(warmup + repeats):
        started = clock()
        run_step()
        seconds = clock() - started
        if call >= warmup or seconds > budget_s:
            times.append(seconds)
        if seconds > budget_s:
            break
    return min(times), times


@dataclass
class CoreUse:
    """``others`` cores kept busy by other processes, of the ``cores`` this process may
    run on, over ``seconds`` (the measuring interval; 0 for a load average)."""

    others: float
    cores: int
    seconds: float = 0.0

    @property
    def busy(self):
        """Whether other processes use enough of the cores to slow this run down."""
        return self.others >= BUSY_CORES

    def describe(self):
        """'other processes kept 1.4 of 2 cores busy' (or '... no core busy')."""
        if not self.busy:
            return f"no other process kept any of the {self.cores} cores busy"
        return f"other processes kept {self.others:.1f} of {self.cores} cores busy"


def usable_cores():
    """The cores this process may run on (its CPU affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def machine_busy_seconds(root="/"):
    """CPU-seconds every core has spent busy since boot, from ``proc/stat`` under ``root``
    (None where it cannot be read)."""
    try:
        with open(os.path.join(root, "proc/stat"), encoding="ascii") as stat:
            fields = stat.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(f) for f in fields[1:9])
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU-seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


def core_use(interval_s=0.25, root="/", sleep=time.sleep, clock=time.monotonic):
    """A :class:`CoreUse` measured over ``interval_s`` seconds (the caller waits that long):
    the busy time of every core less this process's own, per second. Without
    ``proc/stat``, the 1-minute load average less one (this process) stands for it."""
    cores = usable_cores()
    busy, own, started = machine_busy_seconds(root), own_cpu_seconds(), clock()
    if busy is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            return CoreUse(0.0, cores)
        return CoreUse(min(max(load - 1.0, 0.0), cores), cores)
    sleep(interval_s)
    elapsed = max(clock() - started, 1e-9)
    others = (machine_busy_seconds(root) - busy - (own_cpu_seconds() - own)) / elapsed
    return CoreUse(min(max(others, 0.0), cores), cores, elapsed)


def format_duration(seconds):
    """'45 s', '17 min', '3.0 h': a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StepTimeEstimate:
    """Seconds per step of a run: ``measured`` (the fastest of a few steps timed before it
    started, :func:`fastest_of`) until the run has timed ``min_steps`` steps of its own,
    then the median of its last ``window`` steps — so a slow first step or a few steps
    that lost their cores move it little, and a machine that stays busy (or frees up)
    moves it within ``window`` steps. ``core_use`` is what :func:`core_use` said when the
    steps were measured (None when not measured)."""

    def __init__(self, measured, core_use=None, window=20, min_steps=3):
        self.measured, self.core_use = float(measured), core_use
        self.min_steps = min_steps
        self.recent = deque(maxlen=window)

    def observe(self, seconds):
        """One step of the run took ``seconds``."""
        self.recent.append(float(seconds))

    @property
    def seconds_per_step(self):
        if len(self.recent) >= self.min_steps:
            return statistics.median(self.recent)
        return self.measured

    def remaining(self, steps):
        """Seconds the next ``steps`` steps should take."""
        return self.seconds_per_step * max(steps, 0)

    def describe(self, steps):
        """'300 steps ≈ 2.5 min (0.5 s per step, the fastest of 3 measured)' and, when
        other processes were using the cores, what they used."""
        figure = f"{steps} steps ≈ {format_duration(self.remaining(steps))}"
        basis = ("measured over the run's last steps" if len(self.recent) >= self.min_steps
                 else "the fastest of a few measured")
        line = f"{figure} ({self.seconds_per_step:.2g} s per step, {basis})"
        if self.core_use is not None and self.core_use.busy:
            line += (f"; {self.core_use.describe()} while it was measured, so the run may "
                     "be slower while they run")
        return line
