"""Sphinx configuration for escalator's reference documentation.

Build with ``python -m sphinx -W -b html docs <outdir>`` (tests/test_docs.py
does exactly that, warnings as errors).
"""

project = "escalator"
author = "escalator contributors"
copyright = "escalator contributors"
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
# The reference is plain reStructuredText; nothing is pulled from docstrings,
# so building needs neither the package nor its dependencies importable.
extensions: list = []
