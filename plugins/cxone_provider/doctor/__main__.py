"""``python -m cxone_provider.doctor``: the ``cxone-doctor`` command."""

from __future__ import annotations

import sys

from cxone_provider.doctor.cli import main

if __name__ == "__main__":
    sys.exit(main())
