"""How long the instructor's grade-all takes, in each sandbox, and what bubblewrap adds.

    python bench/grading.py [--students 30] [--jobs 2] [--repeats 15] [--overhead-only]

1. A class of ``--students`` students, each handing in five exercises (two backward
   exercises, a modern op, a sampling filter and an optimizer step; every third student's
   softmax is wrong), graded by ``grade_all`` with ``--jobs`` files at once, once in the
   ``basic`` sandbox and once in ``bwrap`` (where it works). Printed: the wall time, and
   per file.
2. bwrap's overhead per child: ``grade_file`` of one right answer, ``--repeats`` times in
   each sandbox, one at a time; the difference of the medians. And the bare cost of
   bubblewrap: ``bwrap … /usr/bin/true`` against ``/usr/bin/true``.

Run it from the instructor's source checkout (the hidden reference is graded against).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratchlm.exercises.gradebook import grade_all  # noqa: E402
from scratchlm.exercises.harness import grade_file  # noqa: E402
from scratchlm.exercises.sandbox import _system_binds, bwrap_works  # noqa: E402

REFERENCE = ROOT / "scratchlm" / "exercises" / "reference"
HEADER = ("import numpy as np\nimport scratchlm as sl\n"
          "from scratchlm.exercises import skeletons\n\n\n")
SOFTMAX = HEADER + ("class Softmax(skeletons.Softmax):\n    def backward(self, g):\n"
                    "        return self.y * (g - (g * self.y).sum(axis=self.axis, "
                    "keepdims=True))\n")
SOFTMAX_WRONG = HEADER + ("class Softmax(skeletons.Softmax):\n    def backward(self, g):\n"
                          "        return self.y * g\n")
TANH = HEADER + ("class Tanh(skeletons.Tanh):\n    def backward(self, g):\n"
                 "        return g * (1 - self.y ** 2)\n")
EXERCISES = ("softmax", "tanh", "rmsnorm", "top_k", "adam")


def write_class(folder, students):
    files = {"tanh.py": TANH, "rmsnorm.py": (REFERENCE / "modern.py").read_text(),
             "top_k.py": (REFERENCE / "data.py").read_text(),
             "adam.py": (REFERENCE / "optimization.py").read_text()}
    for number in range(students):
        student = folder / f"student{number:02d}"
        student.mkdir(parents=True)
        for name, text in files.items():
            (student / name).write_text(text)
        (student / "softmax.py").write_text(SOFTMAX_WRONG if number % 3 == 0 else SOFTMAX)


def grade_class(folder, sandbox, jobs):
    start = time.perf_counter()
    table, exercises = grade_all(folder, list(EXERCISES), jobs=jobs, timeout=60,
                                 sandbox=sandbox, seed=12345)
    seconds = time.perf_counter() - start
    files = sum(len(marks) for marks in table.values())
    full = sum(mark.points == mark.max_points for marks in table.values() for mark in marks)
    return seconds, files, full


def one_child(path, sandboxes, repeats):
    """{sandbox: seconds per grade_file of one right answer}, the sandboxes taken in turn
    (so that a change in the machine's load falls on both), and the paired differences."""
    times = {sandbox: [] for sandbox in sandboxes}
    for _ in range(repeats):
        for sandbox in sandboxes:
            start = time.perf_counter()
            report = grade_file("tanh", path, sandbox=sandbox, timeout=60)
            times[sandbox].append(time.perf_counter() - start)
            assert report.passed, str(report)
    return times


def bare_bwrap(repeats):
    command = ["bwrap", *_system_binds(), "--unshare-all", "--die-with-parent",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "/usr/bin/true"]
    timed = {}
    for name, argv in (("true", ["/usr/bin/true"]), ("bwrap true", command)):
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(argv, check=True)
            samples.append(time.perf_counter() - start)
        timed[name] = statistics.median(samples)
    return timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--overhead-only", action="store_true",
                        help="skip the class; measure bwrap's overhead per child only")
    args = parser.parse_args()
    sandboxes = ["basic"] + (["bwrap"] if bwrap_works() else [])
    folder = Path(tempfile.mkdtemp(prefix="scratchlm-bench-grading-"))
    try:
        write_class(folder / "class", max(args.students, 2))
        if not args.overhead_only:
            print(f"grade-all of {args.students} students × {len(EXERCISES)} exercises, "
                  f"{args.jobs} at a time:")
            for sandbox in sandboxes:
                seconds, files, full = grade_class(folder / "class", sandbox, args.jobs)
                print(f"  {sandbox:>5}: {seconds:6.1f} s for {files} files "
                      f"({seconds / files:.2f} s a file, {full} with full marks)")
        single = folder / "class" / "student01" / "tanh.py"
        times = one_child(single, sandboxes, args.repeats)
        print(f"one file graded alone, the sandboxes in turn, median of {args.repeats}:")
        for sandbox, samples in times.items():
            print(f"  {sandbox:>5}: {statistics.median(samples):.3f} s")
        if "bwrap" in times:
            paired = [b - a for a, b in zip(times["basic"], times["bwrap"])]
            print(f"bwrap's overhead per child (median of paired differences): "
                  f"{statistics.median(paired):+.3f} s (goal ≤ 0.3 s)")
            bare = bare_bwrap(args.repeats)
            print(f"bare bubblewrap: {bare['bwrap true'] * 1000:.1f} ms against "
                  f"{bare['true'] * 1000:.1f} ms for /usr/bin/true alone")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
