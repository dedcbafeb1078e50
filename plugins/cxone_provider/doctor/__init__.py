"""``cxone-doctor`` (or ``python -m cxone_provider.doctor``): check a CXone tenant before trusting it.

Read-only: with an Airflow ``cxone`` connection it goes through the provider's own
:class:`~cxone_provider.hooks.cxone.CxoneHook` — so it sees what the provider really sends and reads —
and asks for a token (one ``POST /auth/token``), discovery (when the connection uses it), the
SecurityUser's agent, the first page of ``agents/states`` and ``apiversion``; every other request is a
``GET``. It prints a pass/fail table of what the provider relies on and exits non-zero when something
the provider needs is missing.

``--record PATH`` writes every answer it got, redacted, to a JSON file that ``cxone-sandbox --replay
PATH`` serves (see :mod:`cxone_sandbox.replay` and ``docs/doctor.md`` for the format).

The parts: :mod:`~cxone_provider.doctor.checks` (what is asked and judged),
:mod:`~cxone_provider.doctor.report` (the table), :mod:`~cxone_provider.doctor.record` (the answers
seen, redacted for ``--record``) and :mod:`~cxone_provider.doctor.cli` (the command).

Airflow's plugin loader imports every ``.py`` file of a plugins folder under its own name: every module of this
package only defines things at import time and runs only when started as a program (``__main__``).
"""

from __future__ import annotations

from cxone_provider.client.auth import jwt_claims
from cxone_provider.doctor.checks import diagnose
from cxone_provider.doctor.cli import build_parser, main
from cxone_provider.doctor.record import RECORD_FORMAT, REDACTED, REDACTED_TENANT, Answer, Recorder
from cxone_provider.doctor.report import FAIL, NOTE, PASS, SKIP, WARN, Check, Report

__all__ = [
    "FAIL",
    "NOTE",
    "PASS",
    "RECORD_FORMAT",
    "REDACTED",
    "REDACTED_TENANT",
    "SKIP",
    "WARN",
    "Answer",
    "Check",
    "Recorder",
    "Report",
    "build_parser",
    "diagnose",
    "jwt_claims",
    "main",
]
