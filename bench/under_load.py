"""Sampling and training beside a busy process: do they slow down in proportion to the cores
the busy process takes, or several times more?

    python bench/under_load.py --run runs/shakespeare-char [--tokens 300] [--steps 60]

Times the command line's ``sample`` (``--tokens`` new tokens from the run's checkpoint) and
``train`` (``--steps`` steps of the shakespeare-char preset into a temporary folder, no
evaluation), each alone and beside one busy-loop process (Python's ``while True: pass``),
alternated, ``--repeats`` times each. On a machine of C cores a busy process takes one, so a
job that used every core should take about C/(C − 1) times as long beside it (2x on 2
cores), and a job that used one core about as long; a job whose threads wait for each other
(a BLAS call shared out over a core that the busy process holds) takes many times longer.
Start-up (imports, reading the corpus) is timed too: it is the same in both columns.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def busy_process():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder to sample from")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count()
    python = [sys.executable, "-m", "scratchlm"]
    with tempfile.TemporaryDirectory() as out_dir:
        jobs = {
            f"sample {args.tokens} tokens": python + [
                "sample", "--run", args.run, "--max-new-tokens", str(args.tokens),
                "--prompt", "ROMEO:"],
            f"train {args.steps} steps": python + [
                "train", "--preset", "shakespeare-char", "--max-steps", str(args.steps),
                "--eval-interval", str(args.steps + 1), "--out-dir", out_dir,
                "--overwrite", "--no-progress"],
        }
        print(f"{cores} cores; load average before: {os.getloadavg()[0]:.2f}; "
              f"SCRATCHLM_FAST={os.environ.get('SCRATCHLM_FAST', '(unset)')}")
        print(f"{'job':>18} {'alone s':>8} {'busy s':>8} {'slowdown':>9}   "
              f"(proportional: {cores / max(cores - 1, 1):.1f}x for a job on every core)")
        for name, command in jobs.items():
            alone, loaded = [], []
            for _ in range(args.repeats):
                alone.append(timed(command))
                busy = busy_process()
                try:
                    loaded.append(timed(command))
                finally:
                    busy.kill()
                    busy.wait()
            a, b = statistics.median(alone), statistics.median(loaded)
            print(f"{name:>18} {a:8.2f} {b:8.2f} {b / a:8.2f}x")


if __name__ == "__main__":
    main()
