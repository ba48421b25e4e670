"""The grader's trust model under attack: a class of hostile submissions, graded by the
instructor's ``grade-all`` with the reference present and the secret seed in
SCRATCHLM_GRADE_SEED, in either sandbox. Every attack scores 0 on its exercise, the right
answers keep full marks, no process outlives grading, nothing is written outside the class
folder, and the CSV does not change after grade-all returns. Then held-out grading: no case
of the secret seed is in the release's expected/, so a lookup table built from it scores 0.

Each attack is a file named after its exercise; ``WRONG`` marks a backward that a working
attack would turn into full marks."""

import csv
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from grading_answers import backward_file

from scratchlm.exercises.answers import prepare_cases
from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.expected import digest, record
from scratchlm.exercises.grader import check_outputs
from scratchlm.exercises.harness import _judged
from scratchlm.exercises.runner import encode
from scratchlm.exercises.sandbox import bwrap_works
from scratchlm.exercises.tasks import Task, check_case, prepare_task

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "scratchlm" / "exercises" / "reference"
SECRET_SEED = 9876543210123
WRONG = "return g"  # softmax's backward, wrong: what every attack must not turn into marks
OUTSIDE = "escaped.txt"  # written beside the class folder by an attack that escapes
#: the first lines of every attack: where it is, and the file outside it aims at
WHERE = f"""
import os as _os
HERE = _os.path.dirname(_os.path.abspath(__file__))
OUT = _os.path.join(HERE, "..", "..", "{OUTSIDE}")
"""


def softmax(backward=WRONG, before=""):
    return backward_file("Softmax", backward, WHERE + textwrap.dedent(before))


def rmsnorm_reference():
    """The hidden reference's RMSNorm, as a right answer (its source pasted in)."""
    source = (REFERENCE / "modern.py").read_text(encoding="utf-8")
    return source


def top_k_reference():
    return (REFERENCE / "data.py").read_text(encoding="utf-8")


def lookup_softmax():
    """Replaying the release: softmax's stored answers (seed 0), keyed by the input's bytes."""
    stored = record(EXERCISES["softmax"], 0)
    table = {}
    for case, entry in zip(prepare_cases(EXERCISES["softmax"], 0), stored["cases"]):
        answer = entry["expected"]["dict"]
        table[hashlib.sha256(case.inputs[0].tobytes()).hexdigest()] = {
            "y": answer[0][1]["data"], "dx": answer[1][1][0]["data"]}
    return softmax(
        before=f"import hashlib\nTABLE = {json.dumps(table)}\n",
        backward="""
            entry = TABLE.get(hashlib.sha256(self.x.tobytes()).hexdigest())
            if entry is None:
                return np.zeros_like(g)
            return np.array(entry["dx"]).reshape(g.shape)""").replace(
        "    def backward(self, g):",
        "    def forward(self, x):\n        self.x = x\n        return super().forward(x)\n\n"
        "    def backward(self, g):")


def lookup_rmsnorm():
    """Replaying the release on a new op: RMSNorm's stored outputs and central differences
    (seed 0), keyed by the input's bytes; nothing computed."""
    table = {hashlib.sha256(case.inputs[0].tobytes()).hexdigest():
             {"y": case.expected["y"].tolist(), "grads": [g.tolist() for g in
                                                          case.expected["grads"]]}
             for case in prepare_task(EXERCISES["rmsnorm"], 0)}
    return (WHERE + f"import hashlib\nimport numpy as np\nimport scratchlm as sl\n"
            f"TABLE = {json.dumps(table)}\n\n\n"
            "class RMSNorm(sl.Function):\n"
            "    def __init__(self, eps=1e-6):\n        self.eps = eps\n\n"
            "    def forward(self, x, weight):\n"
            "        self.entry = TABLE.get(hashlib.sha256(x.tobytes()).hexdigest())\n"
            "        self.shapes = x.shape, weight.shape\n"
            "        return np.array(self.entry['y']) if self.entry else np.zeros(x.shape)\n\n"
            "    def backward(self, g):\n"
            "        if self.entry is None:\n"
            "            return np.zeros(self.shapes[0]), np.zeros(self.shapes[1])\n"
            "        return tuple(np.array(grad) for grad in self.entry['grads'])\n")


ATTACKS = {
    "replays_expected_on_rmsnorm": ("rmsnorm", lookup_rmsnorm()),
    # ------------------------------------------------------------ the techniques
    "replays_expected": ("softmax", lookup_softmax()),
    "double_fork_daemon": ("softmax", softmax(before="""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(2)
                open(OUT, "w").write("rewritten")
                os._exit(0)
            os._exit(0)
        """)),
    "writes_outside": ("softmax", softmax(before="""
        import os, pathlib
        for target in (OUT, "/tmp/scratchlm-attack-escaped.txt"):
            try:
                pathlib.Path(target).write_text("escaped")
            except OSError:
                pass
        fd = os.open(OUT, os.O_WRONLY | os.O_CREAT)
        """)),
    "forges_via_stack": ("softmax", softmax(before="""
        import json, os, sys
        frame = sys._getframe()
        while frame is not None and "order" not in frame.f_locals:
            frame = frame.f_back
        order = frame.f_locals["order"]
        forged = [{"label": case["tuple"][0],  # y = x and ∂L/∂x = x: a forged report is data
                   "output": {"dict": [["y", case["tuple"][1][0]],
                                       ["grads", [case["tuple"][1][0]]]]}}
                  for case in order["cases"]]
        os.write(order["report_fd"], json.dumps({"cases": forged}).encode())
        os._exit(0)
        """)),
    "forges_via_gc": ("softmax", softmax(before="""
        import gc
        answers = [o for o in gc.get_objects() if isinstance(o, dict) and "expected_y" in o]
        """)),
    "generator_frame": ("softmax", softmax(before="""
        def probe():
            yield 1
        generator = probe()
        next(generator)
        LEAK = generator.gi_frame.f_back
        """)),
    "recompiles_library_source": ("softmax", softmax(before=f"""
        SOURCE = open({str(ROOT / 'scratchlm' / 'functional' / 'softmax.py')!r}).read()
        NAMESPACE = {{}}
        exec(compile(SOURCE, "softmax_copy.py", "exec"), NAMESPACE)
        """, backward="return NAMESPACE['Softmax'].backward(self, g)")),
    "engine_autograd": ("softmax", softmax(backward="""
        x = sl.tensor(np.log(self.y), requires_grad=True)
        y = sl.functional.softmax(x, axis=self.axis)
        y.backward(g)
        return x.grad""")),
    "imports_the_library": ("softmax", softmax(before="""
        from scratchlm.functional.softmax import Softmax as LibrarySoftmax
        """, backward="return LibrarySoftmax.backward(self, g)")),
    "execs_reference_source": ("rmsnorm", "import scratchlm as sl\nNAMESPACE = {}\nexec(open("
                               f"{str(REFERENCE / 'modern.py')!r}).read(), NAMESPACE)\n"
                               "RMSNorm = NAMESPACE['RMSNorm']\n"),
    "spec_from_file_location": ("rmsnorm", textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("not_the_reference",
                                                      {str(REFERENCE / 'modern.py')!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        RMSNorm = module.RMSNorm
        """)),
    "ctypes_patch": ("softmax", softmax(before="""
        import ctypes
        ctypes.memmove(id(1.0e-7) + 16, id(1.0) + 16, 8)
        """)),
    "richardson_differences": ("softmax", softmax(backward="""
        x = np.log(self.y)
        grad = np.zeros_like(x)
        flat, out = x.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            total = 0.0
            for h, weight in ((1e-3, 4 / 3), (2e-3, -1 / 3)):
                up, down = flat.copy(), flat.copy()
                up[i] += h
                down[i] -= h
                plus = (self.forward(up.reshape(x.shape)) * g).sum()
                minus = (self.forward(down.reshape(x.shape)) * g).sum()
                total += weight * (plus - minus) / (2 * h)
            out[i] = total
        return grad""")),
    # ------------------------------------------------------------------- techniques of ours
    "thread_after_report": ("softmax", softmax(before="""
        import threading, time
        def keep_writing():
            while True:
                try:
                    open(OUT, "w").write("late")
                except OSError:
                    pass
                time.sleep(0.01)
        threading.Thread(target=keep_writing, daemon=False).start()
        """)),
    "signal_handler": ("softmax", softmax(before="""
        import signal
        def forge(*args):
            open(OUT, "w").write("forged")
        for number in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            signal.signal(number, forge)
        while True:
            pass
        """)),
    "del_and_atexit": ("softmax", softmax(before="""
        import atexit
        def late():
            open(OUT, "w").write("at exit")
        atexit.register(late)
        class Ghost:
            def __del__(self):
                late()
        KEEP = Ghost()
        KEEP.self = KEEP
        """)),
    "patched_builtins": ("softmax", softmax(before="""
        import builtins, json
        builtins.isinstance = lambda *args: True
        json.dumps = lambda *args, **kwargs: '{"cases": "all passed"}'
        np.allclose = lambda *args, **kwargs: True
        """)),
    "sys_modules_injection": ("softmax", softmax(before="""
        import sys
        runner = sys.modules["scratchlm.exercises.runner"]
        runner.run_op = lambda *args, **kwargs: {"y": np.zeros(1), "grads": [np.zeros(1)]}
        sys.modules["scratchlm.exercises.grader"] = runner
        """)),
    "environment_seed": ("softmax", softmax(before="""
        import os
        SEED = os.environ.get("SCRATCHLM_GRADE_SEED")
        """, backward="""
        if SEED is None:
            return g
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))""")),
    "symlink_to_a_classmate": ("softmax", None),  # softmax.py -> ../alice/softmax.py
    "symlink_to_the_reference": ("rmsnorm", None),  # rmsnorm.py -> reference/modern.py
    "symlinked_folder": ("softmax", None),  # the student's folder -> ../alice
    "parent_memory": ("softmax", softmax(before="""
        import os
        MEMORY = open(f"/proc/{os.getppid()}/mem", "rb")
        """)),
    "reads_a_classmate": ("softmax", softmax(before="""
        exec(open(_os.path.join(HERE, "..", "alice", "softmax.py")).read())
        RIGHT = Softmax.backward
        """, backward="return RIGHT(self, g)")),
    "kills_the_parent": ("softmax", softmax(before="""
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        """)),
    "subprocess": ("softmax", softmax(before="""
        import subprocess
        subprocess.run(["sh", "-c", "sleep 5 &"])
        """)),
    "socket": ("softmax", softmax(before="""
        import socket
        socket.create_connection(("127.0.0.1", 9))
        """)),
    "raises_its_limits": ("softmax", softmax(before="""
        import resource
        resource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))
        """)),
    "swaps_the_forward_code": ("softmax", softmax(before="""
        FORWARD_CODE = skeletons.Softmax.forward.__code__
        """)),
    "huge_file": ("softmax", softmax(before="""
        with open("big.bin", "wb") as handle:
            handle.write(b"0" * (64 * 2**20))
        """)),
    "trace_hook": ("softmax", softmax(before="""
        import sys
        sys.settrace(lambda frame, event, arg: None)
        """)),
}

#: honest students: a right answer of each exercise (and one using a helper of its own)
HONEST = {
    "alice": {"softmax.py": softmax(backward=None), "rmsnorm.py": rmsnorm_reference(),
              "top_k.py": top_k_reference()},
    "bob": {"softmax.py": softmax(before="from helper import softmax_backward\n",
                                  backward="return softmax_backward(self.y, g, self.axis)"),
            "helper.py": "def softmax_backward(y, g, axis):\n"
                         "    return y * (g - (g * y).sum(axis=axis, keepdims=True))\n"},
}
EXERCISE_NAMES = ("softmax", "rmsnorm", "top_k")


def write_class(folder):
    for student, files in HONEST.items():
        (folder / student).mkdir(parents=True)
        for name, text in files.items():
            (folder / student / name).write_text(text, encoding="utf-8")
    for student, (exercise, text) in ATTACKS.items():
        if student == "symlinked_folder":
            (folder / student).symlink_to(folder / "alice", target_is_directory=True)
            continue
        (folder / student).mkdir()
        target = folder / student / f"{exercise}.py"
        if student == "symlink_to_a_classmate":
            target.symlink_to(folder / "alice" / "softmax.py")
        elif student == "symlink_to_the_reference":
            target.symlink_to(REFERENCE / "modern.py")
        else:
            target.write_text(text, encoding="utf-8")


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def grading_processes():
    """(pid, parent's command line) of every live grading child (not its supervisor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if b"grading_child" not in command or b"SUBREAPER" in command:
                continue
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            found.append((int(entry.name), Path(f"/proc/{parent}/cmdline").read_bytes()))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module", params=["basic", pytest.param("bwrap", marks=pytest.mark.skipif(
    not bwrap_works(), reason="bubblewrap is missing or cannot create namespaces here"))])
def graded_class(request, tmp_path_factory):
    """The class graded once per sandbox: (scores by student, the folder, what grade-all
    printed, the CSV's bytes when it returned, the tmp folder around the class)."""
    around = tmp_path_factory.mktemp(f"attacks_{request.param}")
    folder = around / "class"
    write_class(folder)
    before = snapshot(folder)
    csv_path = around / "scores.csv"
    env = dict(os.environ, SCRATCHLM_GRADE_SEED=str(SECRET_SEED))
    done = subprocess.run(
        [sys.executable, "-m", "scratchlm.exercises", "grade-all", str(folder), "--csv",
         str(csv_path), "--exercises", ",".join(EXERCISE_NAMES), "--jobs", "2",
         "--timeout", "8", "--memory", "1024", "--sandbox", request.param],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    written = csv_path.read_bytes()
    survivors = [pid for pid, parent in grading_processes()
                 if b"SUBREAPER" not in parent and b"bwrap" not in parent]
    with open(csv_path, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    scores = {row[0]: dict(zip(header, row)) for row in rows}
    return {"scores": scores, "folder": folder, "before": before, "out": done.stdout,
            "csv": csv_path, "written": written, "around": around, "survivors": survivors,
            "sandbox": request.param}


def test_the_report_says_which_sandbox_and_seed(graded_class):
    assert f"graded in the {graded_class['sandbox']} sandbox" in graded_class["out"]
    assert "on the cases of the held-out seed" in graded_class["out"]


def test_right_answers_keep_full_marks(graded_class):
    scores = graded_class["scores"]
    for name in EXERCISE_NAMES:
        assert float(scores["alice"][name]) == EXERCISES[name].points, scores["alice"]["lost"]
    assert float(scores["bob"]["softmax"]) == EXERCISES["softmax"].points, scores["bob"]["lost"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_attack_scores_zero(graded_class, attack):
    exercise = ATTACKS[attack][0]
    row = graded_class["scores"][attack]
    assert float(row[exercise]) == 0, (attack, row["lost"])
    assert row["lost"], attack


def test_no_process_outlives_grading(graded_class):
    assert graded_class["survivors"] == []
    time.sleep(2.5)  # the daemon and the thread would have written by now
    assert [pid for pid, parent in grading_processes()
            if b"SUBREAPER" not in parent and b"bwrap" not in parent] == []


def test_nothing_is_written_outside_and_the_class_is_unchanged(graded_class):
    around = graded_class["around"]
    assert not (around / OUTSIDE).exists()
    assert not Path("/tmp/scratchlm-attack-escaped.txt").exists()
    assert sorted(p.name for p in around.iterdir()) == ["class", "scores.csv", "similarity.csv"]
    assert snapshot(graded_class["folder"]) == graded_class["before"]


def test_the_csv_does_not_change_after_grade_all_returns(graded_class):
    time.sleep(2.5)
    assert graded_class["csv"].read_bytes() == graded_class["written"]


def test_the_reasons_name_what_was_refused(graded_class):
    lost = {student: row["lost"] for student, row in graded_class["scores"].items()}
    assert "a numerical derivative is not a derivation" in lost["richardson_differences"]
    assert "a graded file cannot import scratchlm.functional" in lost["imports_the_library"]
    assert "is a link to" in lost["symlink_to_a_classmate"]
    assert "is a link to" in lost["symlink_to_the_reference"]
    assert "is a link to" in lost["symlinked_folder"]
    for attack in ("execs_reference_source", "spec_from_file_location", "parent_memory",
                   "reads_a_classmate", "recompiles_library_source"):
        assert "may not open" in lost[attack] or "No such file" in lost[attack], lost[attack]
    for attack, what in [("ctypes_patch", "import ctypes"), ("forges_via_gc", "gc.get_objects"),
                         ("generator_frame", "gi_frame"), ("subprocess", "subprocess"),
                         ("socket", "socket"), ("kills_the_parent", "os.kill"),
                         ("double_fork_daemon", "os.fork"), ("trace_hook", "sys.settrace"),
                         ("raises_its_limits", "resource.setrlimit"),
                         ("swaps_the_forward_code", "read the code of")]:
        assert what in lost[attack], (attack, lost[attack])


# ------------------------------------------------------------------------- held-out grading
def _digests(exercise, seed):
    prepare = prepare_task if isinstance(exercise, Task) else prepare_cases
    return [digest(case.inputs) for case in prepare(exercise, seed)]


def test_every_exercise_draws_its_cases_from_the_seed():
    assert len(EXERCISES) == 40
    for name, exercise in EXERCISES.items():
        stored = {case["inputs"] for case in record(exercise, 0)["cases"]}
        assert stored == set(_digests(exercise, 0)), name  # what expected/ holds
        held_out = _digests(exercise, SECRET_SEED)
        assert not stored & set(held_out), name


def test_a_lookup_table_built_from_expected_scores_zero_under_the_secret_seed():
    """The table maps each stored case's input digest to its stored answer; under the
    secret seed no input is in it, so the table has nothing to answer with."""
    for name, exercise in EXERCISES.items():
        table = {case["inputs"]: case["expected"] for case in record(exercise, 0)["cases"]}
        if isinstance(exercise, Task):
            prepared = prepare_task(exercise, SECRET_SEED)
            answers = [table.get(digest(case.inputs)) for case in prepared]
            reported = [{"label": case.label, "output": answer}
                        for case, answer in zip(prepared, answers)]
        else:
            prepared = prepare_cases(exercise, SECRET_SEED)
            reported = [{"label": case.label, "output": table.get(digest(case.inputs))}
                        for case in prepared]
        cases = _judged(exercise, prepared, reported)
        assert not any(case.passed for case in cases), name
        # and the same table does answer the practice seed: it is a working lookup table
        if not isinstance(exercise, Task):
            practice = prepare_cases(exercise, 0)
            answer = table[digest(practice[0].inputs)]
            output = {key: value for key, value in answer["dict"]}
            check_outputs(exercise, practice[0], _decoded(output["y"]),
                          [_decoded(g) for g in output["grads"]])
        elif exercise.expect is None and exercise.kind == "function":
            practice = prepare_task(exercise, 0)
            from scratchlm.exercises.runner import decode
            check_case(exercise, practice[0], decode(table[digest(practice[0].inputs)]))


def _decoded(value):
    from scratchlm.exercises.runner import decode
    return decode(value)


def test_the_child_never_sees_the_seed_or_an_answer(tmp_path):
    """What the parent sends the child: inputs, nothing else (no expected value, tolerance,
    token or seed)."""
    from scratchlm.exercises import harness
    seen = {}

    def capture(order, folder, **kwargs):
        seen.update(order)
        return {"report": b"", "report_truncated": False, "trace": b"", "printed": "",
                "returncode": 0, "timed_out": False, "sandbox": "basic"}
    original = harness.sandboxes.run
    harness.sandboxes.run = capture
    try:
        path = tmp_path / "softmax.py"
        path.write_text(softmax(), encoding="utf-8")
        harness.grade_file("softmax", path, seed=SECRET_SEED, sandbox="basic")
    finally:
        harness.sandboxes.run = original
    assert set(seen) == {"exercise", "module", "path", "entry", "needs", "input_names",
                         "cases"}
    text = json.dumps(seen)
    assert str(SECRET_SEED) not in text and "expected" not in text and "tol" not in text
    prepared = prepare_cases(EXERCISES["softmax"], SECRET_SEED)
    assert seen["cases"] == encode([(c.label, c.inputs, c.case.config, c.cotangent)
                                    for c in prepared])


def test_the_replay_attack_works_on_the_practice_seed(tmp_path):
    """The replaying file is a real attack: on the release's seed it scores full marks (as
    the issue found with grade-all); under the secret seed it scores 0 (above)."""
    from scratchlm.exercises.harness import grade_file
    path = tmp_path / "rmsnorm.py"
    path.write_text(lookup_rmsnorm(), encoding="utf-8")
    report = grade_file("rmsnorm", path, seed=0, sandbox="basic", timeout=30)
    assert report.points == EXERCISES["rmsnorm"].points, str(report)
