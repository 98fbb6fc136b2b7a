"""Make ODIM known to PyOD's ``ADEngine`` (PyOD >= 3).

``pyod.utils.ad_engine.ADEngine`` plans, builds and runs detectors from a
knowledge folder of JSON files (``algorithms.json``, ``benchmarks.json``,
``routing_rules.json``, ``papers.json``). It builds a detector by importing
the entry's ``class_path`` with :func:`importlib.import_module`, so any
importable class works, ``pyod_odim.ODIM`` included; the engine forwards its
``random_state`` to classes that declare one, as ODIM does. The bundled
folder cannot be extended in place, so :func:`engine_knowledge` writes a
copy with ODIM added::

    from pyod.utils.ad_engine import ADEngine
    from pyod_odim.adengine import engine_knowledge

    engine = ADEngine(knowledge_dir=engine_knowledge(), random_state=0)
    plan = engine.plan_detection(engine.profile_data(X), priority="accuracy")
    result = engine.run_detection(X, plan)      # plan["detector_name"] == "ODIM"

or, without the routing rule, ``engine.make_plan(["ODIM", "IForest"])``.
"""

import copy
import glob
import json
import os
import shutil
import tempfile

__all__ = ["DETECTOR_NAME", "ODIM_ALGORITHM", "ODIM_PAPER", "ODIM_RULE", "engine_knowledge"]

DETECTOR_NAME = "ODIM"

ODIM_ALGORITHM = {
    "class_path": "pyod_odim.ODIM",
    "full_name": "Outlier Detection via the Inlier-Memorization effect "
                 "(likelihood of under-fitted generative models)",
    "status": "shipped",
    "data_types": ["tabular"],
    "category": "deep_learning",
    "complexity": {
        "time": "O(M * u * b * K_t * d * h) to train plus O(M * K_c * s * d * h) per check "
                "and O(M * K * n * d * h) to score, where M is n_estimators, u the updates "
                "until patience stops (typically a few hundred), b the batch size, K_t "
                "n_samples_train, K_c n_samples_check, K n_samples_iwae, s the rows "
                "scored at a check and h the hidden width",
        "space": "O(M * d * h) parameters plus O(M * K_t * b * h) activations",
    },
    "strengths": [
        "Needs only a few hundred updates: fast for a deep detector, on CPU or GPU",
        "No labels and no manual stopping rule: each member's checkpoint is chosen "
        "by the GMM-2 Wasserstein criterion",
        "Likelihood scores of an IWAE ensemble capture nonlinear structure",
        "Scales features internally (min-max); works on embeddings of images or text",
        "Sparse post-ReLU image features (e.g. ResNet embeddings) get a rectified-Gaussian "
        "decoder by default (likelihood='auto'): a point mass at zero plus a normal above it",
        "Optional semi-supervised mode uses known outliers (use_labels=True)",
        "contamination takes a float or, as PyOD's detectors do, a PyThresh "
        "thresholder object (e.g. contamination=IQR()) that sets labels_ and "
        "predict() from the scores",
    ],
    "weaknesses": [
        "Slower than shallow detectors such as IForest or ECOD (seconds rather than "
        "fractions of a second on small tabular data)",
        "Scores vary with the random seed; fix random_state for reproducible runs",
        "Needs PyTorch",
        "Assumes outliers are a minority that the model memorizes later than inliers",
    ],
    "best_for": "Medium to large tabular or embedding data where accuracy matters "
                "more than fit time, especially with nonlinear inlier structure",
    "avoid_when": "Fit time is critical on CPU, the data is tiny, or outliers are "
                  "not a minority",
    "benchmark_refs": [],
    "benchmark_rank": {},
    "paper": {"id": "odim", "short": "Kim et al., ICML 2024"},
    "default_params": {"contamination": 0.1},
    "preprocessing_mode": "external",
    "requires": ["torch"],
    "version_added": "pyod-odim 0.1.0",
}

ODIM_PAPER = {
    "title": "ODIM: Outlier Detection via Likelihood of Under-Fitted Generative Models",
    "authors": "Kim, Hwang, Lee, Kim, Kim",
    "venue": "ICML 2024",
    "url": "https://arxiv.org/abs/2301.04257",
}

# Routes accuracy-first tabular work to ODIM; with PyOD's own rules in play,
# the engine's dedup keeps ODIM first and their picks as alternatives.
ODIM_RULE = {
    "id": "odim_tabular_accuracy",
    "conditions": [
        {"field": "data_type", "op": "eq", "value": "tabular"},
        {"field": "priority", "op": "eq", "value": "accuracy"},
    ],
    "recommendations": [
        {"detector": DETECTOR_NAME, "params": {}, "confidence": 0.92},
        {"detector": "IForest", "params": {}, "confidence": 0.85},
    ],
    "reason": "Accuracy priority on tabular data: ODIM, a deep generative detector "
              "that needs no labels or tuned stopping point, with IForest as a fast "
              "shallow alternative",
    "evidence": ["Kim et al., ICML 2024"],
}


def _bundled_knowledge_dir():
    try:
        from pyod.utils import knowledge
    except ImportError:
        raise ImportError(
            "this PyOD has no pyod.utils.knowledge (ADEngine); PyOD >= 3 is needed"
        ) from None
    return os.path.dirname(os.path.abspath(knowledge.__file__))


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def engine_knowledge(path=None):
    """Write PyOD's knowledge base with ODIM added, for ``ADEngine``.

    Every JSON file of the installed PyOD's bundled knowledge folder is
    copied, then ODIM is added: its entry in ``algorithms.json`` (class path
    ``pyod_odim.ODIM``, data types, strengths, weaknesses, complexity,
    paper), its paper in ``papers.json`` and a routing rule in
    ``routing_rules.json`` that recommends it for tabular data when the
    priority is ``"accuracy"``. Other priorities keep PyOD's own routing;
    ``ADEngine.make_plan(["ODIM"])`` picks it explicitly.

    Parameters
    ----------
    path : str or None, optional (default=None)
        Folder to write to; created if missing, and its knowledge files are
        overwritten. ``None`` makes a new temporary folder (left for the
        caller; it is small).

    Returns
    -------
    knowledge_dir : str
        The folder, ready for ``ADEngine(knowledge_dir=...)``.

    Raises
    ------
    ImportError
        If the installed PyOD has no knowledge base (PyOD < 3).
    """
    source = _bundled_knowledge_dir()
    if path is None:
        target = tempfile.mkdtemp(prefix="pyod_odim_knowledge_")
    else:
        target = os.fspath(path)
        os.makedirs(target, exist_ok=True)
    if os.path.abspath(target) == source:
        raise ValueError("refusing to write into PyOD's own knowledge folder")
    for name in glob.glob(os.path.join(source, "*.json")):
        shutil.copyfile(name, os.path.join(target, os.path.basename(name)))

    algorithms_path = os.path.join(target, "algorithms.json")
    algorithms = _read_json(algorithms_path)
    algorithms[DETECTOR_NAME] = copy.deepcopy(ODIM_ALGORITHM)
    _write_json(algorithms_path, algorithms)

    papers_path = os.path.join(target, "papers.json")
    papers = _read_json(papers_path) if os.path.exists(papers_path) else {}
    papers["odim"] = dict(ODIM_PAPER)
    _write_json(papers_path, papers)

    rules_path = os.path.join(target, "routing_rules.json")
    rules = _read_json(rules_path) if os.path.exists(rules_path) else {"version": 1, "rules": []}
    rules["rules"] = [rule for rule in rules.get("rules", []) if rule.get("id") != ODIM_RULE["id"]]
    rules["rules"].insert(0, copy.deepcopy(ODIM_RULE))
    _write_json(rules_path, rules)
    return target
