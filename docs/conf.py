"""Sphinx configuration of the project's own documentation (built with
warnings as errors by ``nox -s docs``)."""
project = "libertem-live (open plugin stack)"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest"]
exclude_patterns = ["_build", "tests"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_typehints = "none"
