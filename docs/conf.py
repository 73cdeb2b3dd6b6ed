"""Sphinx configuration of s3bp's API reference: autodoc over the numpydoc docstrings (napoleon)."""

import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))  # the checkout's s3bp, also when it is not installed

project = "s3bp"
author = "s3bp contributors"
release = re.search(r'^__version__ = "([^"]+)"', open(os.path.join("..", "s3bp", "__init__.py")).read(), re.M).group(1)
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False}
exclude_patterns = ["_build"]
html_theme = "alabaster"
