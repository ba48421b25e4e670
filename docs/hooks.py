"""MkDocs hooks that make the two editions of the notebooks and the formulas work together.

- ``on_files``: the i18n plugin (``mkdocs-static-i18n``) rebuilds every file it sorts into a
  language as a plain ``File``, and a plain ``File`` ending in ``.ipynb`` is copied as an asset.
  This hook runs after it, so here each notebook is turned back into a page
  (``notebooks/05_attention.zh.ipynb`` → ``zh/notebooks/05_attention/``), keeping the
  language the i18n plugin gave it; mkdocs-jupyter then renders it, executing nothing.
- ``on_post_page``: the language menu's links already lead to the same page in the other
  edition. The ``<link rel="alternate">`` tags the i18n plugin also puts in each page's head
  make Material's script fetch ``sitemap.xml`` beside every page (a 404 and a console error
  each time), so they are removed. And mkdocs-jupyter's template writes a ``<script src="">``
  where it would load MathJax 2 from a CDN; an empty ``src`` makes the browser load the page
  itself as a script (a console error), so it is removed: the site's own MathJax 3 typesets
  the notebooks.
- ``on_post_build``: MathJax 3 ships with the site, so formulas typeset with no network. It
  comes from the ``django-static-mathjax`` wheel (the ``docs`` extra installs it: MathJax's own
  ``es5`` build packaged as files, with no dependencies) and is copied into
  ``assets/mathjax/`` of the built site.
"""

import re
import shutil
from pathlib import Path

from mkdocs.plugins import event_priority


@event_priority(-200)  # after the i18n plugin's on_files (-100)
def on_files(files, config):
    for file in files:
        if file.src_uri.endswith(".ipynb"):
            file.is_documentation_page = lambda: True
    return files


def on_post_page(output, page, config):
    output = re.sub(r'<link rel="alternate" href="[^"]*" hreflang="[^"]*">\n?', "", output)
    return output.replace('<script src=""> </script>', "")


def on_post_build(config, **kwargs):
    import mathjax

    site = Path(config["site_dir"])

    source = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (source / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax's es5 build is missing under {source}: "
                                "reinstall the docs extra (pip install -e '.[docs]')")
    shutil.copytree(source, site / "assets" / "mathjax", dirs_exist_ok=True)

