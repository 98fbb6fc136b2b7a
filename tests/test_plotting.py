"""Figures of a fitted ODIM (matplotlib, Agg backend)."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from pyod_odim import ODIM  # noqa: E402
from pyod_odim import plotting  # noqa: E402

N_MEMBERS = 2


@pytest.fixture(scope="module")
def fitted():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny network: threads only add overhead
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 4))
    X[:15] += 5.0
    y = np.r_[np.ones(15, dtype=int), np.zeros(135, dtype=int)]
    clf = ODIM(n_estimators=N_MEMBERS, n_samples_iwae=8, patience=3, check_every=5,
               engine="none", random_state=0).fit(X)
    torch.set_num_threads(threads)
    return clf, X, y


def test_plot_selection_draws_a_line_and_a_marker_per_member(fitted):
    clf, _, _ = fitted
    fig = plotting.plot_selection(clf)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_xdata().size > 1]
    assert len(curves) == N_MEMBERS
    np.testing.assert_array_equal(curves[0].get_xdata(), clf.history_["update"])
    markers = [line for line in ax.lines if line.get_xdata().size == 1]
    assert sorted(float(m.get_xdata()[0]) for m in markers) == sorted(clf.best_update_.tolist())
    assert ax.get_xlabel() == "update"


def test_plot_selection_uses_the_given_axes(fitted):
    clf, _, _ = fitted
    fig, ax = plt.subplots()
    assert plotting.plot_selection(clf, ax=ax) is fig
    assert len(fig.axes) == 1


def test_histogram_with_and_without_labels(fitted):
    clf, X, y = fitted
    fig = plotting.plot_score_histogram(clf)
    assert isinstance(fig, Figure)
    labelled = plotting.plot_score_histogram(clf, y=y)
    legend = [t.get_text() for t in labelled.axes[0].get_legend().get_texts()]
    assert any(t.startswith("inliers (n=135)") for t in legend)
    assert any(t.startswith("outliers (n=15)") for t in legend)
    # Scores of new data can be shown instead of the training scores.
    new = plotting.plot_score_histogram(clf, scores=clf.decision_function(X[:40]))
    assert isinstance(new, Figure)
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_score_histogram(clf, y=y[:10])


def test_summary_has_two_panels_and_saves(fitted, tmp_path):
    clf, _, y = fitted
    fig = plotting.plot_summary(clf, y=y)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig.savefig(tmp_path / "summary.png")
    assert (tmp_path / "summary.png").stat().st_size > 5_000


def test_unfitted_detector_is_rejected():
    for plot in (plotting.plot_selection, plotting.plot_score_histogram, plotting.plot_summary):
        with pytest.raises(NotFittedError):
            plot(ODIM())


def test_missing_matplotlib_gives_the_pip_hint(fitted, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install pyod-odim\[plot\]"):
        plotting.plot_summary(fitted[0])
