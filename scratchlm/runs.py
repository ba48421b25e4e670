"""The run folder: what a training run keeps on disk, and the rules that keep it whole.

    runs/<name>/checkpoint.npz        the newest verified checkpoint
                checkpoint.prev.npz   the one it replaced
                checkpoint.next.npz   a checkpoint being written (verified, then renamed)
                config.json, loss.png, tokenizer.json
                .lock                 held by the one process training into the folder

A checkpoint is written beside the last good one (``checkpoint.next.npz``), read back —
every array's CRC-32 checked and every value finite — and only then renamed over
``checkpoint.npz``; the one it replaces stays as ``checkpoint.prev.npz``. A kill at any
moment leaves a loadable checkpoint, and the temporary files of an interrupted save are
removed at the next start or save (:func:`recover_run`). A full disk or a file-size limit
fails the save with one line naming the file, the space needed and the checkpoint kept.

One process at a time writes into a run folder (:func:`run_lock`). Before a run touches an
existing folder, the folder is shown to be writable (:func:`check_writable`); ``--overwrite``
moves the old run aside and deletes it only once the new run's first checkpoint is verified
(:func:`replacing`). A resumed run keeps its seed (:func:`check_resume`): its random
generators continue from the checkpoint.
"""

import contextlib
import errno
import os
import shutil
from dataclasses import fields

from scratchlm import backend, checkpoint
from scratchlm.checkpoint_fields import check_run_state
from scratchlm.errors import (
    CheckpointWriteError,
    ConfigError,
    RunError,
    RunInUseError,
    RunNotFoundError,
    ScratchlmError,
)

CHECKPOINT = "checkpoint.npz"
PREVIOUS_CHECKPOINT = "checkpoint.prev.npz"  # the one the last save replaced
STAGED_CHECKPOINT = "checkpoint.next.npz"  # written and verified before it is renamed
LOCK_FILE = ".lock"
#: What makes a folder a run a new one must not replace unasked: something trained was saved.
TRAINED_FILES = (CHECKPOINT, PREVIOUS_CHECKPOINT, STAGED_CHECKPOINT, "config.json")
#: Fields of a TrainConfig a resumed run may not change: its generators continue.
FIXED_ON_RESUME = ("seed",)


# ------------------------------------------------------------------------ names and folders
def cache_dir():
    """Where tokenized corpora are cached: ``$SCRATCHLM_CACHE``, by default
    ``~/.cache/scratchlm`` (never the current folder)."""
    return os.environ.get("SCRATCHLM_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "scratchlm")


def check_run_name(name, flag="--run-name"):
    """A run name is one folder name under the runs folder: not empty, not absolute, not
    '.' or '..', and without a path separator (which could reach outside it)."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if (not isinstance(name, str) or not name or name in (".", "..") or "\0" in name
            or any(sep in name for sep in separators)):
        raise ConfigError(f"{flag} {name!r}: give a folder name such as my-run, not a path; "
                          "runs go under --out-dir (choose that folder with --out-dir)")
    return name


def check_folder(flag, path):
    """Refuse ``path`` for a folder ``flag`` names when it, or a folder above it, is a file."""
    here = os.path.abspath(path)
    while True:
        if os.path.exists(here):
            if not os.path.isdir(here):
                which = "is" if here == os.path.abspath(path) else f"is inside {here}, which is"
                raise ConfigError(f"{flag} {path} {which} a file, not a folder; give a folder "
                                  "(it is created if it does not exist)")
            return
        parent = os.path.dirname(here)
        if parent == here:
            return
        here = parent


def check_writable(run_dir):
    """Show that files can be written in ``run_dir`` (or, while it does not exist, in the
    nearest folder above it, where it will be created): write, fsync and remove a probe
    file. :class:`~scratchlm.errors.RunError` naming the folder when that fails — a
    read-only folder fails here, before any training, not at the first save."""
    folder = os.path.abspath(run_dir)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    probe = os.path.join(folder, f".scratchlm-write-probe.{os.getpid()}")
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, b"probe")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            _remove(probe)
    except OSError as error:
        raise RunError(f"cannot write in {folder} ({error.strerror or error}); the run needs "
                       "a folder it can write checkpoints into: choose another --out-dir or "
                       "make it writable", path=run_dir) from None


def holds_run(run_dir):
    """The trained files in ``run_dir`` (empty when it holds no run a new one would replace;
    a folder with only a tokenizer, a run stopped before its first checkpoint, is free)."""
    return [name for name in TRAINED_FILES if os.path.exists(os.path.join(run_dir, name))]


def aside_path(run_dir):
    """Where :func:`replacing` keeps the run it replaces until the new one is saved."""
    parent, name = os.path.split(os.path.abspath(run_dir))
    return os.path.join(parent, f".{name}.replaced")


@contextlib.contextmanager
def replacing(run_dir):
    """Move the run in ``run_dir`` aside for the block (``--overwrite``). The new run's first
    verified checkpoint deletes it (:func:`write_checkpoint` calls :func:`drop_replaced`);
    if the block fails before that, the new folder goes and the old run is put back."""
    aside = aside_path(run_dir)
    if os.path.exists(aside):
        raise RunError(f"{aside} holds a run an earlier --overwrite set aside; move it back to "
                       f"{run_dir} or delete it, then try again", path=run_dir)
    with run_lock(run_dir):
        os.replace(run_dir, aside)
    os.makedirs(run_dir)
    try:
        yield
    except BaseException:
        if os.path.exists(aside):
            shutil.rmtree(run_dir, ignore_errors=True)
            os.replace(aside, run_dir)
        raise


def drop_replaced(run_dir):
    """Delete the run :func:`replacing` set aside for ``run_dir`` (if any)."""
    aside = aside_path(run_dir)
    if os.path.isdir(aside):
        shutil.rmtree(aside)


# ------------------------------------------------------------------------ the lock
_held_locks = {}  # real path of a run folder -> [file descriptor, depth] in this process


@contextlib.contextmanager
def run_lock(run_dir, wait=False):
    """Hold ``run_dir/.lock`` (an advisory ``flock``) for the block: one process writes into
    a run at a time. Re-entrant within a process; where ``fcntl`` is missing (Windows),
    nothing is locked. :class:`~scratchlm.errors.RunInUseError` when another process holds
    it (``wait=True``: wait for it instead)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    os.makedirs(run_dir, exist_ok=True)
    key = os.path.realpath(run_dir)
    if key in _held_locks:
        _held_locks[key][1] += 1
        try:
            yield
        finally:
            _held_locks[key][1] -= 1
        return
    descriptor = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RunInUseError(f"another process is writing into {run_dir} (it holds "
                                f"{os.path.join(run_dir, LOCK_FILE)}); wait for it to finish "
                                "or stop it, or choose another --run-name",
                                path=run_dir) from None
        _held_locks[key] = [descriptor, 1]
        try:
            yield
        finally:
            del _held_locks[key]
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


# ------------------------------------------------------------------------ checkpoints
def write_checkpoint(state, run_dir, step=None):
    """Write ``state`` as ``run_dir/checkpoint.npz`` without ever losing the last good one:
    into ``checkpoint.next.npz`` (itself written atomically by
    :func:`scratchlm.checkpoint.save`), read back with every array's CRC-32 and finiteness
    checked, then renamed over ``checkpoint.npz``; the checkpoint it replaces becomes
    ``checkpoint.prev.npz`` (a hard link made first where the file system allows, so
    ``checkpoint.npz`` never goes missing). A run an ``--overwrite`` set aside is deleted
    once this first checkpoint of the new run is in place."""
    staged = os.path.join(run_dir, STAGED_CHECKPOINT)
    try:
        checkpoint.save(state, staged)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        raise _no_space(error, state, run_dir) from None
    try:
        checkpoint.load(staged)  # CRC-32 of every array, and no NaN or Inf
    except BaseException:
        _remove(staged)
        raise
    _promote(run_dir)
    drop_replaced(run_dir)


def _no_space(error, state, run_dir):
    """The one-line error of a save that met a full disk or a file-size limit."""
    needed = sum(getattr(a, "nbytes", 0) for a in _arrays(state))
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EFBIG: "the file-size limit (ulimit -f) is below it"}[error.errno]
    current = os.path.join(run_dir, CHECKPOINT)
    kept = (f"the last good checkpoint, {current}, is intact" if os.path.exists(current)
            else "no checkpoint of this run was written before")
    return CheckpointWriteError(
        f"cannot write {os.path.join(run_dir, STAGED_CHECKPOINT)}: it needs about "
        f"{needed / 2**20:.1f} MiB and {reason}; {kept}. Free some space (or raise the "
        "limit) and resume the run", path=run_dir)


def _arrays(state):
    if isinstance(state, dict):
        for value in state.values():
            yield from _arrays(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from _arrays(value)
    elif hasattr(state, "nbytes"):
        yield state


def _promote(run_dir):
    """Rename the verified ``checkpoint.next.npz`` over ``checkpoint.npz``, keeping the one
    it replaces as ``checkpoint.prev.npz``."""
    current = os.path.join(run_dir, CHECKPOINT)
    previous = os.path.join(run_dir, PREVIOUS_CHECKPOINT)
    if os.path.exists(current):
        link = previous + ".tmp"
        _remove(link)
        try:
            os.link(current, link)
            os.replace(link, previous)
        except OSError:  # no hard links here: move it (recover_run covers the gap)
            _remove(link)
            os.replace(current, previous)
    os.replace(os.path.join(run_dir, STAGED_CHECKPOINT), current)
    checkpoint.fsync_directory(run_dir)


def recover_run(run_dir):
    """Tidy a run folder after a kill: remove the temporary files of an interrupted save,
    and finish an interrupted rotation — a ``checkpoint.next.npz`` (complete, since
    :func:`scratchlm.checkpoint.save` renames it into place) that verifies now is the newest
    checkpoint and is promoted as :func:`write_checkpoint` would have; one that does not
    verify goes. Returns the names removed."""
    if not os.path.isdir(run_dir):
        return []
    removed = []
    for name in sorted(os.listdir(run_dir)):
        if _is_temporary(name):
            _remove(os.path.join(run_dir, name))
            removed.append(name)
    staged = os.path.join(run_dir, STAGED_CHECKPOINT)
    if os.path.exists(staged):
        try:
            checkpoint.load(staged)
        except ScratchlmError:
            _remove(staged)
            removed.append(STAGED_CHECKPOINT)
        else:
            _promote(run_dir)
    return removed


def _is_temporary(name):
    """The temporary files a save writes: checkpoint.save's ``.<name>.<uuid>.tmp``, the
    hard link ``checkpoint.prev.npz.tmp``, ``config.json.tmp``, ``loss.png.tmp.png`` and a
    writability probe."""
    return ((name.startswith(".checkpoint") and name.endswith(".tmp"))
            or name.startswith(".scratchlm-write-probe.")
            or name in (PREVIOUS_CHECKPOINT + ".tmp", "config.json.tmp", "loss.png.tmp.png"))


def load_run_checkpoint(run_dir):
    """The state in ``run_dir/checkpoint.npz``, after :func:`recover_run` (so a kill during a
    save never loses the run); :class:`~scratchlm.errors.RunNotFoundError` when the folder
    or the checkpoint is missing."""
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isdir(run_dir):
        raise RunNotFoundError(f"no checkpoint at {path}: there is no run folder {run_dir}",
                               path=run_dir)
    try:
        with run_lock(run_dir):
            recover_run(run_dir)
    except RunInUseError:
        pass  # a training process owns the folder (and tidies it); its checkpoint is whole
    except OSError:
        pass  # a folder this user may only read: nothing to tidy from here
    if not os.path.exists(path):
        raise RunNotFoundError(f"no checkpoint at {path}: the run folder has none (a run "
                               "writes its first one after checkpoint_interval steps)",
                               path=run_dir)
    return check_run_state(checkpoint.load(path), path)


def write_text_atomic(path, text):
    """``text`` into ``path`` through ``path + '.tmp'`` and a rename: never half a file."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def nonfinite_arrays(state, where=""):
    """Names (dotted paths) of the float arrays in the nested ``state`` holding NaN or Inf."""
    bad = []
    if isinstance(state, dict):
        for key, value in state.items():
            bad += nonfinite_arrays(value, f"{where}.{key}" if where else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            bad += nonfinite_arrays(value, f"{where}[{i}]")
    elif hasattr(state, "dtype") and getattr(state.dtype, "kind", "") in "fc":
        xp = backend.get_array_module(state)
        if not bool(xp.isfinite(state).all()):
            bad.append(where)
    return bad


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


# ------------------------------------------------------------------------ resuming
def config_changes(saved, config):
    """[(field, saved value, new value)] for every field of ``config`` (a TrainConfig) that
    differs from ``saved`` (a checkpoint's ``train_config`` dict)."""
    return [(f.name, saved[f.name], getattr(config, f.name)) for f in fields(config)
            if f.name in saved and saved[f.name] != getattr(config, f.name)]


def check_resume(saved, config, where="resume"):
    """The changes ``config`` makes to a checkpoint's ``saved`` train_config, refusing one
    to a field a resumed run keeps (:data:`FIXED_ON_RESUME`, the seed: the random
    generators continue from the checkpoint, so a new seed could not take effect)."""
    changes = config_changes(saved, config)
    for name, old, new in changes:
        if name in FIXED_ON_RESUME:
            raise ConfigError(f"{where}: the checkpoint was trained with {name}={old!r}; a "
                              f"resumed run keeps it (its random generators continue from "
                              f"the checkpoint), so {name}={new!r} cannot be applied: resume "
                              f"with {name}={old!r}, or start a new run")
    return changes
