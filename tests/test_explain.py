"""Why a row is an outlier: ODIM.explain_outlier, pyod_odim.explain and the CLI's --explain."""

import csv
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from pyod_odim import ODIM, cli, explain, load  # noqa: E402

SMALL = dict(n_estimators=2, patience=2, check_every=5, max_updates=60, min_updates=0,
             random_state=0)
# The command line's counterpart (min_updates stays at its default there).
FAST = ["--n-estimators", "2", "--n-samples-iwae", "8", "--patience", "2",
        "--check-every", "5", "--engine", "none", "--threads", "1"]
NAMES = ["alpha", "beta", "gamma, the third", "delta"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    X[:6, 1] += 7.0  # rows 0-5 stand out in feature 1
    return X


@pytest.fixture(scope="module")
def fitted(data):
    return ODIM(**SMALL).fit(data)


# ----------------------------------------------------------------------
# explain_outlier
def test_renders_bars_bands_and_title(fitted, data):
    fig = fitted.explain_outlier(0, X=data)
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches if patch.get_width() > 0]
    assert_allclose(heights, fitted.feature_contributions(data[:1])[0], rtol=1e-12)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x0", "x1", "x2", "x3"]
    assert "row 0" in ax.get_title()
    label = "outlier" if fitted.decision_function(data[:1])[0] > fitted.score_threshold_ \
        else "inlier"
    assert f"({label}," in ax.get_title()
    # One band per cutoff, at the interpolated training quantiles.
    bands = [c for c in ax.collections if "cutoff band" in str(c.get_label())]
    assert [b.get_label() for b in bands] == ["0.95 cutoff band (training rows)",
                                            "0.99 cutoff band (training rows)"]
    expected = explain.cutoff_bands(fitted.scorer_.contribution_quantiles, [0.95, 0.99])
    for band, values in zip(bands, expected):
        assert_allclose([seg[0, 1] for seg in band.get_segments()], values)
    fig.canvas.draw()  # the Agg backend renders it


def test_columns_cutoffs_and_saving(fitted, data, tmp_path):
    fig = fitted.explain_outlier(-1, columns=[3, 1], cutoffs=[0.9], feature_names=NAMES,
                                 file_name=tmp_path / "row", X=data)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["delta", "beta"]
    assert "row 149" in ax.get_title()
    assert (tmp_path / "row.png").stat().st_size > 1000
    fitted.explain_outlier(2, X=data, file_name=tmp_path / "row", file_type="svg")
    assert (tmp_path / "row.svg").read_text().lstrip().startswith("<?xml")
    fitted.explain_outlier(2, X=data, file_name=str(tmp_path / "kept.pdf"))
    assert (tmp_path / "kept.pdf").is_file() and not (tmp_path / "kept.pdf.png").exists()


def test_dataframe_names_are_the_default(data):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(data, columns=["a", "b", "c", "d"])
    clf = ODIM(**SMALL).fit(frame)
    ax = clf.explain_outlier(1, X=frame, columns=[1, 0]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "a"]
    ax = clf.explain_outlier(1, X=data, feature_names=list("pqrs")).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("pqrs")


@pytest.mark.parametrize("kwargs, message", [
    (dict(X=None), "ODIM does not keep its training rows"),
    (dict(ind=1.0), "ind must be an integer row index, got float"),
    (dict(ind=True), "ind must be an integer"),
    (dict(ind=150), "ind=150 is out of range for X with 150 rows"),
    (dict(ind=-151), "out of range"),
    (dict(columns=[0, 4]), "column 4 is out of range: the model has 4 features"),
    (dict(columns=[-1]), "column -1 is out of range"),
    (dict(columns=["a"]), "columns must hold integer feature indices"),
    (dict(columns=[0.0]), "columns must hold integer feature indices"),
    (dict(columns=[]), "non-empty list"),
    (dict(feature_names=["a", "b"]), "feature_names has 2 names, but the model was "
                                     "fitted on 4 features"),
    (dict(feature_names="abcd"), "not a single string"),
    (dict(cutoffs=[0.95, 1.0]), "cutoffs must be floats in (0, 1)"),
    (dict(cutoffs=[0.0]), "cutoffs must be floats in (0, 1)"),
    (dict(cutoffs=0.9), "non-empty list"),
    (dict(cutoffs=["0.9"]), "cutoffs must be floats in (0, 1)"),
])
def test_bad_arguments_say_what_is_wrong(fitted, data, kwargs, message):
    arguments = dict(dict(ind=0, X=data), **kwargs)
    with pytest.raises(ValueError, match=_escaped(message)):
        fitted.explain_outlier(**arguments)


def test_wrong_width_of_X_is_refused(fitted, data):
    with pytest.raises(ValueError, match="3 features, but the model was fitted with 4"):
        fitted.explain_outlier(0, X=data[:, :3])


def _escaped(text):
    import re

    return re.escape(text)


# ----------------------------------------------------------------------
# The numbers behind the charts
def test_cutoff_bands_interpolate_the_percentiles():
    quantiles = np.arange(101, dtype=float)[:, None] * np.array([[1.0, 2.0]])
    assert_allclose(explain.cutoff_bands(quantiles, [0.95, 0.955, 0.999]),
                    [[95.0, 190.0], [95.5, 191.0], [99.9, 199.8]])


def test_top_features_order_and_ties():
    c = np.array([[0.1, 3.0, -2.0, 3.0], [5.0, 4.0, 3.0, 2.0]])
    assert_array_equal(explain.top_features(c, 3), [[1, 3, 0], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\]"):
        explain.top_features(c, 5)


def test_plot_top_contributions_shows_the_highest_rows(fitted, data):
    fig = explain.plot_top_contributions(fitted, data, n_rows=3, max_features=2)
    ax = fig.axes[0]
    top = np.argsort(-fitted.decision_scores_)[:3]
    assert [t.get_text().split()[1] for t in ax.get_yticklabels()] == [str(i) for i in top]
    assert ax.images[0].get_array().shape == (3, 2)


# ----------------------------------------------------------------------
# The command line
def _write_csv(path, X, header=None, label=None):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        for i, row in enumerate(X):
            cells = [f"{v:.8f}" for v in row]
            if label is not None:
                cells.insert(label[0], str(label[1][i]))
            writer.writerow(cells)
    return path


def _read_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _run(args, capsys):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def cli_fit(tmp_path_factory, data):
    """One fit through the CLI: --explain 4 (every name), a saved model and the plot."""
    import torch

    folder = tmp_path_factory.mktemp("explain_cli")
    _write_csv(folder / "data.csv", data, header=NAMES)
    before = torch.get_num_threads()
    calls = []
    original = explain.plot_top_contributions

    def spy(*args, **kwargs):
        fig = original(*args, **kwargs)
        calls.append(kwargs["ax"])
        return fig

    explain.plot_top_contributions = spy
    try:
        status = cli.main(["score", str(folder / "data.csv"), "-o", str(folder / "out.csv"),
                           "--explain", "4", "--save-model", str(folder / "m.odim"),
                           "--plot", str(folder / "plot.png"), *FAST])
    finally:
        explain.plot_top_contributions = original
        torch.set_num_threads(before)
    assert status == 0
    return folder, calls


def _check_explained(path, model, X, k):
    header, rows = _read_csv(path)
    expected = ["score", "label"]
    for r in range(1, k + 1):
        expected += [f"top{r}_feature", f"top{r}_value", f"top{r}_contribution"]
    assert header == expected
    assert len(rows) == X.shape[0]
    c = model.feature_contributions(X)
    for i, row in enumerate(rows):
        names = row[2::3]
        values = np.array(row[3::3], dtype=float)
        contributions = np.array(row[4::3], dtype=float)
        index = [NAMES.index(n) for n in names]
        # The k largest, largest first, with the row's own values.
        assert_array_equal(index, np.argsort(-c[i], kind="stable")[:k])
        assert_allclose(values, X[i, index], rtol=1e-7, atol=1e-7)
        assert_allclose(contributions, c[i, index], rtol=1e-6, atol=1e-6)
    return rows


def test_cli_explain_columns_match_feature_contributions(cli_fit, data):
    folder, _ = cli_fit
    model = load(folder / "m.odim")
    rows = _check_explained(folder / "out.csv", model, data, 4)
    # The planted feature leads for the planted rows; a name with a comma is quoted.
    assert [row[2] for row in rows[:6]] == ["beta"] * 6
    assert '"gamma, the third"' in (folder / "out.csv").read_text()


def test_cli_explain_with_a_loaded_model(cli_fit, data, capsys, one_thread):
    folder, _ = cli_fit
    status, out, err = _run(["score", folder / "data.csv", "--model", folder / "m.odim",
                             "--explain", "3", "-o", folder / "again.csv"], capsys)
    assert status == 0, err
    _check_explained(folder / "again.csv", load(folder / "m.odim"), data, 3)
    fitted_rows = _read_csv(folder / "out.csv")[1]
    again_rows = _read_csv(folder / "again.csv")[1]
    assert [r[:3] for r in again_rows] == [r[:3] for r in fitted_rows]  # score, label, top1
    # Without -o the summary shows the top features of the highest scores.
    status, out, err = _run(["score", folder / "data.csv", "--model", folder / "m.odim",
                             "--explain", "1"], capsys)
    assert status == 0, err
    assert "top features: beta=" in out


def test_cli_plot_adds_the_top_rows_contributions(cli_fit):
    folder, calls = cli_fit
    assert len(calls) == 1
    fig = calls[0].figure
    assert len(fig.axes) == 4  # selection, histogram, contributions and its colour bar
    assert calls[0].get_title().startswith("Feature contributions of the highest-scored rows")
    assert (folder / "plot.png").stat().st_size > 20_000


def test_cli_explanation_in_chunks_equals_one_pass(fitted, data):
    names = [f"f{j}" for j in range(4)]
    whole = cli._explanation(fitted, data, names, 2)
    chunked = cli._explanation(fitted, data, names, 2, chunk_bytes=8 * 4 * 7)  # 7 rows
    for a, b in zip(whole, chunked):
        assert_array_equal(a, b)


def test_cli_headerless_names_are_file_columns(tmp_path, data, capsys, one_thread):
    y = np.zeros(len(data), dtype=int)
    y[:6] = 1
    _write_csv(tmp_path / "plain.csv", data, label=(1, y))  # label is the file's column 1
    status, out, err = _run(["score", tmp_path / "plain.csv", "--label-column", "1",
                             "--explain", "4", "-o", tmp_path / "out.csv", *FAST], capsys)
    assert status == 0, err
    _, rows = _read_csv(tmp_path / "out.csv")
    assert {n for row in rows for n in row[2::3]} == {"#0", "#2", "#3", "#4"}
    assert [row[2] for row in rows[:6]] == ["#2"] * 6  # feature 1 is the file's column 2


def test_cli_threshold_iqr_end_to_end(tmp_path, data, capsys, one_thread):
    pytest.importorskip("pythresh")
    from pythresh.thresholds.iqr import IQR

    _write_csv(tmp_path / "data.csv", data, header=NAMES)
    status, out, err = _run(["score", tmp_path / "data.csv", "--threshold", "iqr",
                             "-o", tmp_path / "out.csv", *FAST], capsys)
    assert status == 0, err
    _, rows = _read_csv(tmp_path / "out.csv")
    scores = np.array([r[0] for r in rows], dtype=float)
    labels = np.array([r[1] for r in rows], dtype=int)
    assert_array_equal(labels, IQR().fit(scores).labels_)
    assert 0 < labels.sum() < len(labels)
    assert f"{labels.sum()} rows flagged as outliers (thresholder IQR" in out


@pytest.mark.parametrize("args, message", [
    (["--threshold", "iqr", "--contamination", "0.1"],
     "--threshold and --contamination both set how rows are labelled"),
    (["--threshold", "no_such_thresholder"],
     "--threshold no_such_thresholder: unknown PyThresh thresholder"),
    (["--explain", "2", "-o", "out.npy"], "--explain writes feature names, which a .npy"),
    (["--explain", "0"], "must be at least 1"),
])
def test_cli_refuses_bad_combinations(tmp_path, data, capsys, args, message):
    if "no_such_thresholder" in args:
        pytest.importorskip("pythresh")
    _write_csv(tmp_path / "data.csv", data)
    args = [a if a != "out.npy" else tmp_path / a for a in args]
    status, out, err = _run(["score", tmp_path / "data.csv", *args, *FAST], capsys)
    assert status in (1, 2)
    assert message in err
    assert not list(tmp_path.glob("out.*"))


def test_cli_threshold_not_with_model(cli_fit, capsys):
    folder, _ = cli_fit
    status, _, err = _run(["score", folder / "data.csv", "--model", folder / "m.odim",
                           "--threshold", "iqr"], capsys)
    assert status == 1
    assert "not allowed with --model" in err and "--threshold" in err


def test_cli_threshold_without_pythresh(tmp_path, data, capsys, monkeypatch):
    # A None entry in sys.modules makes the import fail, as without the package.
    monkeypatch.setitem(sys.modules, "pythresh", None)
    monkeypatch.setitem(sys.modules, "pythresh.thresholds", None)
    _write_csv(tmp_path / "data.csv", data)
    status, _, err = _run(["score", tmp_path / "data.csv", "--threshold", "iqr", *FAST],
                          capsys)
    assert status == 1
    assert err.startswith("odim: error: PyThresh thresholders need the pythresh package")
