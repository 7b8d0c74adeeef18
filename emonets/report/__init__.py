"""The training report: figures per specialist and fusion, Markdown and a self-contained HTML page."""
