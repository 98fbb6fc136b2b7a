"""Fixtures shared by the test files."""

import sys

import pytest


@pytest.fixture()
def one_thread():
    """Restore PyTorch's thread count after a test that fits in-process.

    The command line's ``--threads 1`` sets PyTorch's pool for the process
    it runs in; in-process CLI tests would otherwise leave it at 1.
    """
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def close_figures():
    """Close every matplotlib figure a test left open (where pyplot is in use)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(scope="session")
def pyod_rows():
    """``pyod_rows(n, seed)``: ``n`` training rows of PyOD's ``generate_data``, 5 features.

    10 % of them are outliers; the same ``(n, seed)`` gives the same array
    (made once per session, so treat it as read-only).
    """
    from pyod.utils.data import generate_data

    made = {}

    def rows(n, seed):
        if (n, seed) not in made:
            made[n, seed] = generate_data(n_train=n, train_only=True, n_features=5,
                                          random_state=seed)[0]
        return made[n, seed]

    return rows
