"""Every script in examples/ runs to the end (in a subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "quick_start.py": "On test data:",
    "combine_with_pyod.py": "Maximization ROC:",
    "score_csv.py": "rows scored",
}


@pytest.fixture(scope="module")
def started():
    # Independent scripts: start them together, wait for each in its test.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"  # small fits on a shared machine
    env["MPLBACKEND"] = "Agg"
    processes = {
        name: subprocess.Popen([sys.executable, str(REPO / "examples" / name)], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for name in EXAMPLES
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name, started):
    out, err = started[name].communicate(timeout=300)
    assert started[name].returncode == 0, err
    assert EXAMPLES[name] in out
