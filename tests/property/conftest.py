"""Hypothesis profiles of the property suite, and the count of generated cases in the closing summary.

``ci`` (the default): a fixed number of examples per test, derandomized, so the suite takes the same cases
every run and fits CI (it is sized to run in well under 3 minutes on one busy core). ``nightly``
(``pytest tests/property --hypothesis-profile nightly``): 20 times the examples, a fresh random draw each run.
Each test asks :func:`examples` for its share of the profile's ``max_examples``."""
from __future__ import annotations

from hypothesis import HealthCheck, settings

import graphs

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, suppress_health_check=_QUIET,
                          print_blob=True)
settings.register_profile("nightly", max_examples=2000, deadline=None, suppress_health_check=_QUIET, print_blob=True)
if settings.get_current_profile_name() == "default":
    settings.load_profile("ci")


def pytest_terminal_summary(terminalreporter):
    if graphs.CASES:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(graphs.CASES.items()))
        terminalreporter.write_line(f"property cases ({settings.get_current_profile_name()} profile): {parts}")
