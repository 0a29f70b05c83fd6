"""Provider conformance suites (the kit in ``plugins.testing`` run on each provider).

The kit is imported by the test modules before their ``pytest_plugins`` line is read, so ask
pytest to rewrite its asserts here, before any of them is imported.
"""
import pytest

pytest.register_assert_rewrite("plugins.testing")
