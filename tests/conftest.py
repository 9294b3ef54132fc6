import numpy as np
import pytest

import kernel_checks


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.hookimpl(trylast=True)  # (after -k and -m have deselected)
def pytest_collection_modifyitems(session, config, items):
    """Start the README's checks under other BLAS kernels now when they are among the tests to
    run: they run beside the suite instead of being waited for at their turn."""
    if any(kernel_checks.TEST_NAME in item.name for item in items):
        kernel_checks.started()


def pytest_sessionfinish(session, exitstatus):
    kernel_checks.stop()
