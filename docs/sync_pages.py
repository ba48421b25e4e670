"""Write the site's generated pages: ``python docs/sync_pages.py`` (a test fails when they are
out of date, naming this command).

- ``docs/api/<module>.md``: one page per public module of ``scratchlm``, each a single
  mkdocstrings directive (``::: scratchlm.module``) that renders every public class and
  function with the derivation its docstring carries; ``docs/api/index.md`` lists them. Found by
  walking the package's files. The answer key (``exercises/reference``) and the command-line
  entry points are left out.
- ``docs/notebooks/NN_name.ipynb`` and ``NN_name.zh.ipynb``: symbolic links to the executed
  notebooks of both editions in ``notebooks/`` and ``notebooks/zh/``, so the site renders
  exactly what is stored (mkdocs-jupyter executes nothing) and holds no second copy.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
LEFT_OUT = ("scratchlm.exercises.reference", "scratchlm.__main__", "scratchlm.exercises.__main__")


def public_modules():
    """Dotted names of the package's public modules, in file order."""
    for path in sorted((REPO / "scratchlm").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if any(part.startswith("_") for part in parts):
            continue
        if any(name == hidden or name.startswith(hidden + ".") for hidden in LEFT_OUT):
            continue
        yield name


def page_of(module):
    """``scratchlm.nn.module`` → ``api/scratchlm/nn/module.md``: folders, not dots, because
    the i18n plugin reads a dotted suffix as a language (``.nn`` is Norwegian Nynorsk)."""
    return "api/" + module.replace(".", "/") + ".md"


def api_pages():
    """{relative path: text} of every API page."""
    modules = list(public_modules())
    pages = {page_of(name): f"# `{name}`\n\n::: {name}\n" for name in modules}
    index = ["# API reference", "",
             "Every public module of `scratchlm`, rendered from its docstrings: each op's page "
             "carries the derivation of its backward pass.", ""]
    index += [f"- [`{name}`]({page_of(name).removeprefix('api/')})" for name in modules]
    pages["api/index.md"] = "\n".join(index) + "\n"
    return pages


def notebook_links():
    """{relative path in docs/: link target} of every notebook of both editions."""
    links = {}
    for edition, suffix in (("notebooks", ""), ("notebooks/zh", ".zh")):
        for notebook in sorted((REPO / edition).glob("[0-9][0-9]_*.ipynb")):
            link = f"notebooks/{notebook.stem}{suffix}.ipynb"
            links[link] = os.path.relpath(notebook, (DOCS / link).parent)
    return links


def stale():
    """What differs from what this script would write: a list of paths under docs/."""
    wrong = [path for path, text in api_pages().items()
             if not (DOCS / path).is_file() or (DOCS / path).read_text(encoding="utf-8") != text]
    wrong += [path for path, target in notebook_links().items()
              if not (DOCS / path).is_symlink() or os.readlink(DOCS / path) != target]
    wanted = set(api_pages()) | set(notebook_links())
    wrong += [path.relative_to(DOCS).as_posix() for folder in ("api", "notebooks")
              for path in (DOCS / folder).rglob("*.*")
              if path.suffix in (".md", ".ipynb") and not path.name.startswith("index.")
              and path.relative_to(DOCS).as_posix() not in wanted]
    return sorted(wrong)


def write():
    for folder in ("api", "notebooks"):
        (DOCS / folder).mkdir(exist_ok=True)
    for path in stale():
        if (DOCS / path).is_symlink() or (DOCS / path).exists():
            (DOCS / path).unlink()
    for path, text in api_pages().items():
        (DOCS / path).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / path).write_text(text, encoding="utf-8")
    for path, target in notebook_links().items():
        if not (DOCS / path).is_symlink():
            (DOCS / path).symlink_to(target)


if __name__ == "__main__":
    write()
