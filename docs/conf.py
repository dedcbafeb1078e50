"""Sphinx configuration: ``make docs`` builds these pages with ``sphinx-build -W`` into docs/_build."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

# autodoc imports the operators, which import Airflow: give it a home of its own, never ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cxone-docs-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from cxone_provider import __version__  # noqa: E402 - after the environment above

project = "airflow-provider-cxone"
author = "airflow-provider-cxone contributors"
copyright = "the airflow-provider-cxone contributors"
release = __version__
version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "cxone_docs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# Links to a heading of another page ([…](sandbox.md#the-journal)) resolve from these levels.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
# Airflow's own classes are not documented here; their names stay plain text.
nitpicky = False

html_theme = "alabaster"
html_title = f"airflow-provider-cxone {release}"
html_static_path: list[str] = []
