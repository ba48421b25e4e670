"""Finding the data files that an installed package ships, without importing the package."""

import importlib.util
from pathlib import Path


class MissingDataPackageError(ImportError):
    """A package whose data files are needed is not installed; the message says how to fix it."""


def find_package_data(module: str, relative_path: str) -> Path | None:
    """Path of ``relative_path`` inside installed package ``module``, or None if it is not there.

    Uses importlib's finder, which does not run the package's code, so packages installed
    with ``pip install --no-deps`` work even when their own dependencies are missing.
    """
    spec = importlib.util.find_spec(module)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative_path
        if path.exists():
            return path
    return None


def package_data(module: str, distribution: str, caller: str, relative_path: str) -> Path:
    """Like `find_package_data`, but a missing file raises an error naming the pip command
    (``distribution`` is the package's pip name) that installs it."""
    path = find_package_data(module, relative_path)
    if path is None:
        raise MissingDataPackageError(
            f"{caller} reads {relative_path!r} from the {distribution!r} package, which is not "
            f"installed. Fix: pip install --no-deps {distribution}")
    return path
