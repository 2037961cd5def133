"""Sphinx configuration for skprune's documentation."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MPLBACKEND", "Agg")

import skprune  # noqa: E402

project = "skprune"
author = "the skprune developers"
copyright = "2026, the skprune developers"
release = version = skprune.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax 3.2.2 shipped in a wheel and copied into _static/mathjax: formulas
    # typeset with no network (Sphinx's default loads MathJax from a CDN).
    "sphinx-mathjax-offline",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
# Objects in docstrings that numpydoc would try to cross-reference but that
# have no page of their own here.
nitpicky = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Only plot_*.py run at build time (on digits, seconds each).
    "filename_pattern": r"/plot_",
    # The benchmarks are shown as code; `make bench` runs them.
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1000,
    # The execution-time pages load jQuery and DataTables from a CDN.
    "write_computation_times": False,
}

intersphinx_mapping = {}
templates_path = ["_templates"]
exclude_patterns = ["_build", "reproductions/*.rst"]
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = "skprune"
html_theme_options = {"navigation_with_keys": False}
suppress_warnings = ["config.cache"]
