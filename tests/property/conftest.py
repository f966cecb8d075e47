"""The count of generated cases in the closing summary. The Hypothesis profiles of the property suite are
registered in ``tests/conftest.py`` (they must exist before ``--hypothesis-profile`` is read, whichever tests run):

``ci`` (the default): a fixed number of examples per test, derandomized, so the suite takes the same cases
every run and fits CI (it is sized to run in well under 3 minutes on one busy core). ``nightly``
(``pytest tests/property --hypothesis-profile nightly``): 20 times the examples, a fresh random draw each run.
Each test asks :func:`examples` for its share of the profile's ``max_examples``."""
from __future__ import annotations

from hypothesis import settings

import graphs


def pytest_terminal_summary(terminalreporter):
    if graphs.CASES:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(graphs.CASES.items()))
        terminalreporter.write_line(f"property cases ({settings.get_current_profile_name()} profile): {parts}")
