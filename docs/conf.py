"""Sphinx configuration of the project's own documentation."""
project = "libertem-live (open plugin stack)"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest"]
exclude_patterns = ["_build", "tests"]
html_theme = "alabaster"
