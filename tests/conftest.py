"""Fixtures shared by the test files."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """torch on one thread for the test (counts and memory do not depend on it; the test's speed
    on a shared machine does), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def scoped_registry():
    """The test's own registry: modules it registers (toys, plugins it loads) are gone after it."""
    from hambench.registry import scoped_registry

    with scoped_registry():
        yield
