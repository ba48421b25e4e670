// MathJax 3: $...$ and \(...\) inline, $$...$$ and \[...\] displayed; pymdownx.arithmatex
// wraps Markdown formulas in .arithmatex, mkdocs-jupyter leaves notebook formulas as written.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
  },
  options: { ignoreHtmlClass: "no-mathjax", processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-MarkdownOutput" },
};
