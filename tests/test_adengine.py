"""ODIM through PyOD's ADEngine with the knowledge folder from pyod_odim.adengine."""

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("pyod.utils.ad_engine", reason="this PyOD has no ADEngine")
from pyod.utils import knowledge as pyod_knowledge  # noqa: E402
from pyod.utils.ad_engine import ADEngine  # noqa: E402

from pyod_odim import ODIM  # noqa: E402
from pyod_odim.adengine import ODIM_RULE, engine_knowledge  # noqa: E402

SMALL = {"n_estimators": 2, "n_samples_iwae": 8, "patience": 3, "check_every": 5,
         "engine": "eager"}


@pytest.fixture(scope="module")
def knowledge_dir(tmp_path_factory):
    return engine_knowledge(tmp_path_factory.mktemp("kb"))


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 4))
    X[:20] += 5.0
    return X


def test_folder_holds_pyod_knowledge_plus_odim(knowledge_dir):
    bundled = os.path.dirname(pyod_knowledge.__file__)
    names = sorted(n for n in os.listdir(bundled) if n.endswith(".json"))
    assert sorted(n for n in os.listdir(knowledge_dir) if n.endswith(".json")) == names
    with open(os.path.join(bundled, "algorithms.json")) as handle:
        original = json.load(handle)
    with open(os.path.join(knowledge_dir, "algorithms.json")) as handle:
        extended = json.load(handle)
    assert set(extended) == set(original) | {"ODIM"}
    entry = extended["ODIM"]
    assert entry["class_path"] == "pyod_odim.ODIM" and entry["status"] == "shipped"
    # Same fields as PyOD's own entries, so every engine query can read it.
    assert set(entry) == set(original["IForest"])


def test_default_temporary_folder_and_rewriting_is_idempotent(tmp_path):
    temporary = engine_knowledge()
    try:
        assert os.path.isfile(os.path.join(temporary, "algorithms.json"))
    finally:
        shutil.rmtree(temporary)
    engine_knowledge(tmp_path)
    engine_knowledge(tmp_path)
    with open(tmp_path / "routing_rules.json") as handle:
        ids = [rule["id"] for rule in json.load(handle)["rules"]]
    assert ids.count(ODIM_RULE["id"]) == 1


def test_engine_knows_and_explains_odim(knowledge_dir):
    engine = ADEngine(knowledge_dir=knowledge_dir)
    assert "ODIM" in [d["name"] for d in engine.list_detectors(data_type="tabular")]
    info = engine.explain_detector("ODIM")
    assert info["paper"]["short"] == "Kim et al., ICML 2024"
    assert "odim" in engine.kb.papers


def test_accuracy_plan_routes_to_odim_and_others_are_unchanged(knowledge_dir, X):
    engine = ADEngine(knowledge_dir=knowledge_dir)
    bundled = ADEngine()
    profile = engine.profile_data(X)
    plan = engine.plan_detection(profile, priority="accuracy")
    assert plan["detector_name"] == "ODIM"
    assert plan["params"] == {"contamination": 0.1}
    for priority in ("balanced", "speed"):
        assert (engine.plan_detection(profile, priority=priority)["detector_name"]
                == bundled.plan_detection(profile, priority=priority)["detector_name"])


def test_engine_builds_and_runs_odim(knowledge_dir, X):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine = ADEngine(knowledge_dir=knowledge_dir, random_state=3)
        plan = engine.plan_detection(engine.profile_data(X), priority="accuracy")
        plan["params"].update(SMALL)
        built = engine.build_detector(plan)
        assert isinstance(built, ODIM) and built.random_state == 3  # seed forwarded
        result = engine.run_detection(X, plan, X_test=X[:10])
    finally:
        torch.set_num_threads(threads)
    clf = result["detector"]
    assert isinstance(clf, ODIM) and clf.n_estimators == 2
    assert result["scores_train"].shape == (200,)
    assert result["scores_test"].shape == (10,)
    assert result["n_anomalies"] == 20
    assert result["scores_train"][:20].mean() > result["scores_train"][20:].mean()
    analysis = engine.analyze_results(result, X=X)
    assert analysis["n_anomalies"] == 20


def test_explicit_plan_without_routing(knowledge_dir):
    engine = ADEngine(knowledge_dir=knowledge_dir)
    plan = engine.make_plan(["ODIM", "IForest"], params=[{"n_estimators": 3}])
    assert plan["detector_name"] == "ODIM"
    assert plan["params"] == {"n_estimators": 3, "contamination": 0.1}
    assert plan["alternatives"][0]["detector_name"] == "IForest"


def test_entry_says_thresholder_objects_are_accepted(knowledge_dir):
    with open(os.path.join(knowledge_dir, "algorithms.json")) as handle:
        strengths = json.load(handle)["ODIM"]["strengths"]
    assert any("thresholder" in line for line in strengths)
