"""The ``odim`` command line, end to end.

Successful runs go through ``python -m pyod_odim`` in a subprocess; the many
bad-input cases call :func:`pyod_odim.cli.main` in-process (same code path,
without paying the torch import per case), plus one subprocess run that
checks a failing process prints no traceback.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyod_odim import _io, cli

REPO = Path(__file__).resolve().parents[1]
# Tiny, quick fits: 2 members, 8 importance samples, early stop, no TorchScript.
FAST = ["--n-estimators", "2", "--n-samples-iwae", "8", "--patience", "2",
        "--check-every", "5", "--engine", "none", "--threads", "1"]
N_ROWS, N_FEATURES = 120, 3


def _cli_command(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"  # small fits on a shared machine
    return dict(args=[sys.executable, "-m", "pyod_odim", *map(str, args)], cwd=cwd, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_cli(*args, cwd):
    """Start ``python -m pyod_odim ARGS``; pass the result to :func:`finish`."""
    return subprocess.Popen(**_cli_command(args, cwd))


def finish(process):
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def run_cli(*args, cwd):
    return finish(start_cli(*args, cwd=cwd))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    y = np.zeros(N_ROWS, dtype=int)
    y[:12] = 1
    X[:12] += 6.0  # clear outliers
    return X, y


def write_csv(path, X, y=None, header=None):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        for i, row in enumerate(X):
            cells = [f"{v:.6f}" for v in row]
            if y is not None:
                cells.append(str(int(y[i])))
            writer.writerow(cells)
    return path


def read_scores_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["score", "label"]
    return np.array(rows[1:], dtype=float)


# ----------------------------------------------------------------------
# Through a subprocess. The runs are independent, so they start together
# (each pays the torch import) and every test waits for its own.
@pytest.fixture(scope="module")
def launched(tmp_path_factory, data):
    X, y = data
    folder = tmp_path_factory.mktemp("cli")
    write_csv(folder / "data.csv", X, y, header=["a", "b", "c", "truth"])
    write_csv(folder / "plain.csv", X, y)  # label is the last column
    np.save(folder / "X.npy", X)
    np.savez(folder / "Xy.npz", X=X, y=y)
    demo = ["demo", *FAST]
    try:
        import matplotlib  # noqa: F401

        demo += ["--plot", folder / "demo.png"]
    except ImportError:
        pass
    runs = {
        "header": ("score", "data.csv", "--label-column", "truth", "-o", "scores.csv",
                   "--save-model", "odim.model", *FAST),
        "plain": ("score", "plain.csv", "--label-column", "-1", "-o", "plain.npy", *FAST),
        "npy": ("score", "X.npy", "-o", "npy_scores.csv", *FAST),
        "npz": ("score", "Xy.npz", *FAST),
        "missing": ("score", "missing.csv", "-o", "never.csv"),
        "demo": demo,
    }
    processes = {name: start_cli(*args, cwd=folder) for name, args in runs.items()}
    yield folder, processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_csv_with_header_label_column_save_model_then_model(launched):
    folder, processes = launched
    done = finish(processes["header"])
    assert done.returncode == 0, done.stderr
    assert "ROC-AUC" in done.stdout and "'truth'" in done.stdout
    fitted = read_scores_csv(folder / "scores.csv")
    assert fitted.shape == (N_ROWS, 2)
    assert set(np.unique(fitted[:, 1])) <= {0.0, 1.0}
    assert fitted[:12, 0].mean() > fitted[12:, 0].mean()  # outliers score higher
    assert (folder / "odim.model").is_file()

    # The saved model scores the same rows again without fitting.
    done = run_cli("score", "data.csv", "--label-column", "truth", "--model", "odim.model",
                   "-o", "again.npy", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "scored with" in done.stdout
    rescored = np.load(folder / "again.npy")
    np.testing.assert_allclose(rescored[:, 0], fitted[:, 0], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(rescored[:, 1], fitted[:, 1])


def test_csv_without_header_label_index_to_npy(launched):
    folder, processes = launched
    done = finish(processes["plain"])
    assert done.returncode == 0, done.stderr
    assert f"{N_ROWS} rows x {N_FEATURES} features (label column #{N_FEATURES} excluded)" \
        in done.stdout
    result = np.load(folder / "plain.npy")
    assert result.shape == (N_ROWS, 2)
    assert int(result[:, 1].sum()) == pytest.approx(0.1 * N_ROWS, abs=2)


def test_npy_input(launched):
    folder, processes = launched
    done = finish(processes["npy"])
    assert done.returncode == 0, done.stderr
    assert read_scores_csv(folder / "npy_scores.csv").shape == (N_ROWS, 2)


def test_npz_input_prints_summary_with_metrics(launched):
    _, processes = launched
    done = finish(processes["npz"])
    assert done.returncode == 0, done.stderr
    assert "ROC-AUC" in done.stdout and "against array 'y'" in done.stdout
    assert "highest scores" in done.stdout


def test_demo_runs_and_reports_both_protocols_for_every_detector(launched):
    folder, processes = launched
    done = finish(processes["demo"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "held-out rows" in done.stdout and "precision@n" in done.stdout
    for name in ("ODIM", "IForest", "KNN", "LOF", "ECOD"):
        line = next(line for line in lines if line.startswith(name + " "))
        values = [float(v) for v in line.split()[1:5]]
        assert all(0.0 <= v <= 1.0 for v in values), line
        if name in ("ODIM", "IForest"):  # both well above chance on cardio
            assert values[0] > 0.7 and values[2] > 0.7, line
    assert "GMM backend" in done.stdout and "device" in done.stdout
    if "--plot" in processes["demo"].args:
        assert (folder / "demo.png").stat().st_size > 10_000


def test_failing_process_prints_one_line_and_no_traceback(launched):
    folder, processes = launched
    done = finish(processes["missing"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["odim: error: missing.csv: no such file"]
    assert not (folder / "never.csv").exists()


# ----------------------------------------------------------------------
# Bad input, in-process
def _bad_files(folder, X):
    """name -> (path, extra args, expected message part)."""
    cases = {}

    def text(name, content):
        path = folder / name
        path.write_text(content)
        return path

    cases["empty"] = (text("empty.csv", ""), [], "the file is empty")
    cases["header_only"] = (text("head.csv", "a,b,c\n"), [], "header but no data rows")
    cases["non_numeric"] = (text("words.csv", "a,b\n1,x\n2,3\n"), [],
                            "column 'b' is not numeric (line 2: 'x')")
    cases["nan_cell"] = (text("nan.csv", "a,b\n1,2\n3,nan\n"), [],
                         "missing value (NaN) in column 'b' at line 3")
    cases["empty_cell"] = (text("hole.csv", "1,2\n3,\n"), [],
                           "missing value (empty cell) in column #1 at line 2")
    cases["ragged"] = (text("ragged.csv", "1,2\n3,4,5\n"), [], "line 2 has 3 fields, expected 2")
    cases["unknown_extension"] = (text("data.xlsx", "1,2\n"), [], "unknown file type '.xlsx'")
    cases["no_such_label"] = (text("lab.csv", "a,b\n1,2\n3,4\n"), ["--label-column", "y"],
                              "no column named 'y' (columns: a, b)")
    cases["label_not_binary"] = (text("lab2.csv", "a,b\n1,2\n3,4\n"), ["--label-column", "b"],
                                 "label column 'b' must hold only 0 (inlier) and 1 (outlier)")
    np.savez(folder / "noX.npz", data=X)
    cases["npz_without_X"] = (folder / "noX.npz", [], "no array named 'X' (found: data)")
    np.save(folder / "strings.npy", np.array([["a", "b"]]))
    cases["npy_strings"] = (folder / "strings.npy", [], "is not numeric")
    cases["npy_empty_file"] = (text("zero.npy", ""), [], "zero.npy: the file is empty")
    cases["npz_not_a_zip"] = (text("text.npz", "1,2\n"), [], "text.npz: not a .npz (zip) file")
    bad = X.copy()
    bad[5, 1] = np.nan
    np.save(folder / "nan.npy", bad)
    cases["npy_nan"] = (folder / "nan.npy", [], "missing value (NaN) in column #1 at row 5")
    good = write_csv(folder / "good.csv", X)
    cases["bad_output_type"] = (good, ["-o", folder / "out.txt"], "unknown output type '.txt'")
    cases["bad_contamination"] = (good, ["--contamination", "0.9", *FAST], "contamination")
    cases["model_is_not_a_model"] = (good, ["--model", good], "cannot load a model")
    cases["model_with_fit_options"] = (good, ["--model", good, "--n-estimators", "2"],
                                       "not allowed with --model, which scores with the "
                                       "saved model as it is: --n-estimators")
    return cases


BAD_CASES = ["empty", "header_only", "non_numeric", "nan_cell", "empty_cell", "ragged",
             "unknown_extension", "no_such_label", "label_not_binary", "npz_without_X",
             "npy_strings", "npy_nan", "npy_empty_file", "npz_not_a_zip", "bad_output_type", "bad_contamination",
             "model_is_not_a_model", "model_with_fit_options"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_error_line_and_no_output(case, tmp_path, data, capsys, one_thread):
    path, extra, expected = _bad_files(tmp_path, data[0])[case]
    out = tmp_path / "result.csv"
    if "-o" not in extra:
        extra = [*extra, "-o", out]
    before = set(tmp_path.iterdir())
    status = cli.main(["score", str(path), *map(str, extra)])
    err = capsys.readouterr().err
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("odim: error: "), err
    assert expected in lines[0]
    assert set(tmp_path.iterdir()) == before  # no output, no temp file


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    assert cli.main(["score", str(path)]) == 1
    assert "needs pyarrow (pip install pyarrow)" in capsys.readouterr().err


def test_wrong_feature_count_for_loaded_model(tmp_path, data, capsys, one_thread):
    X, _ = data
    model = tmp_path / "m.model"
    assert cli.main(["score", str(write_csv(tmp_path / "a.csv", X)),
                     "--save-model", str(model), *FAST]) == 0
    capsys.readouterr()
    narrow = write_csv(tmp_path / "narrow.csv", X[:, :2])
    out = tmp_path / "out.csv"
    assert cli.main(["score", str(narrow), "--model", str(model), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"odim: error: {narrow}: has 2 feature columns, but the model in "
                   f"{model} was fitted on 3")
    assert not out.exists()


def test_tsv_and_label_by_index_in_process(tmp_path, data, capsys, one_thread):
    X, y = data
    path = tmp_path / "data.tsv"
    rows = ["\t".join([str(int(label))] + [f"{v:.5f}" for v in row]) for row, label in zip(X, y)]
    path.write_text("\n".join(rows) + "\n")
    assert cli.main(["score", str(path), "--label-column", "0", *FAST]) == 0
    out = capsys.readouterr().out
    assert f"{N_ROWS} rows x {N_FEATURES} features (label column #0 excluded)" in out


def test_write_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "scores.csv"
    target.write_text("old content\n")

    def explode(handle, *args, **kwargs):
        handle.write("half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(_io.np, "savetxt", explode)
    with pytest.raises(OSError, match="disk full"):
        _io.write_scores(str(target), np.zeros(3), np.zeros(3))
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_help_version_and_usage_errors(capsys):
    assert cli.main(["--version"]) == 0
    assert "odim " in capsys.readouterr().out
    assert cli.main(["score", "--help"]) == 0
    assert "--label-column" in capsys.readouterr().out
    assert cli.main([]) == 2
    assert cli.main(["score", "x.csv", "--n-estimators", "0"]) == 2


def test_load_demo_shapes():
    from pyod_odim.datasets import load_demo

    X, y = load_demo()
    assert X.shape == (1831, 21) and X.dtype == np.float64
    assert y.shape == (1831,) and int(y.sum()) == 176


def test_fit_options_reach_the_model(tmp_path, one_thread):
    from pyod_odim.cli import build_parser, _odim_params

    args = build_parser().parse_args(
        ["score", "in.csv", "--n-jobs", "-1", "--max-fit-rows", "500", "--seed", "3"])
    params = _odim_params(args)
    assert params["n_jobs"] == -1 and params["max_fit_rows"] == 500
    assert params["random_state"] == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["score", "in.csv", "--n-jobs", "0"])


def test_model_files_load_safely_and_pickles_only_when_trusted(tmp_path, data, capsys, one_thread):
    import joblib

    from pyod_odim import ODIM

    X = data[0]
    csv = write_csv(tmp_path / "x.csv", X)
    model_path = tmp_path / "m.odim"
    assert cli.main(["score", str(csv), "--save-model", str(model_path), *FAST]) == 0
    assert model_path.read_bytes()[:4] == b"PK\x03\x04"  # a model file, not a pickle
    out = tmp_path / "s.npy"
    assert cli.main(["score", str(csv), "--model", str(model_path), "-o", str(out)]) == 0
    capsys.readouterr()

    fitted = ODIM(n_estimators=2, patience=2, check_every=5, max_updates=40, min_updates=0,
                  random_state=0).fit(X)
    pickled = tmp_path / "old.joblib"
    joblib.dump(fitted, pickled)
    assert cli.main(["score", str(csv), "--model", str(pickled), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "cannot load a model" in err and "--trust-pickle" in err
    assert cli.main(["score", str(csv), "--model", str(pickled), "--trust-pickle",
                     "-o", str(out)]) == 0
    # The CSV holds 6 decimals; the neighbour stage's scores are of order 1, some near 0.
    np.testing.assert_allclose(np.load(out)[:, 0], fitted.decision_function(X), rtol=1e-6,
                               atol=1e-5)
    assert cli.main(["score", str(csv), "--trust-pickle", *FAST]) == 1
    assert "--trust-pickle applies only with --model" in capsys.readouterr().err
