"""Switching graph recording off: ``with sl.no_grad(): ...``."""

import contextlib

_enabled = True


def is_grad_enabled():
    """Whether ops performed now are recorded for backward."""
    return _enabled


@contextlib.contextmanager
def _set_grad_enabled(mode):
    global _enabled
    previous, _enabled = _enabled, mode
    try:
        yield
    finally:
        _enabled = previous


def no_grad():
    """Context manager: nothing computed inside it is recorded (inference, updates)."""
    return _set_grad_enabled(False)


def enable_grad():
    """Context manager: record again inside a ``no_grad`` block."""
    return _set_grad_enabled(True)
