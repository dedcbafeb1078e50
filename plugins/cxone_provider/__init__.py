"""Apache Airflow provider for NICE CXone: Studio's *Join Agent Session* action as Airflow operators."""

from __future__ import annotations

__version__ = "0.1.0"
