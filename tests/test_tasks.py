import dataclasses
from pathlib import Path

import numpy as np
import pytest

from podium.config import PredictConfig
from podium.core.errors import PodiumError
from podium.tasks.task import TASKS, SingleLabelTask, decode_multilabel, detect_task, get_task


def test_probabilities() -> None:
    logits = np.array([[2.0, 0.0, -1.0]])
    p = get_task("multiclass").probabilities(logits)
    assert np.allclose(p.sum(1), 1) and p.argmax() == 0
    q = get_task("multilabel").probabilities(np.array([[0.0, 10.0]]))
    assert np.allclose(q, [[0.5, 1 / (1 + np.exp(-10))]])


def test_each_task_names_registered_metrics() -> None:
    from podium.data.training.folds import STRATIFIERS
    from podium.engine.losses import LOSSES
    from podium.tasks.metrics import METRICS
    from podium.tasks.submission import FORMATS

    for name in TASKS:
        task = get_task(name)
        assert task.primary in task.metrics and all(m in METRICS for m in task.metrics)
        assert task.stratify in STRATIFIERS and task.loss in LOSSES and all(f in FORMATS for f in task.submissions)


# ------------------------------------------------------------------------------------------ what each task owns

C3 = ("a", "b", "c")


def test_single_label_tasks_decide_nothing_and_decode_the_argmax() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    for name in ("multiclass", "ordinal"):
        task = get_task(name)
        if name == "multiclass":
            assert task.fit_decisions(np.array([0, 2, 1]), p, PredictConfig()) == {}
            assert task.fit_decisions(np.array([0, 2, 1]), p, PredictConfig(threshold=0.3)) == {}
        assert task.decode(p, {}, C3) == ["a", "c", "b"]
        assert task.decode(p, {"threshold": 0.05}, C3) == ["a", "c", "b"]  # a threshold does not matter
        assert task.predict(p, {}).tolist() == [0, 2, 1]


def test_ordinal_decodes_grades() -> None:
    grades = ("0", "1", "2", "3", "4")
    p = np.eye(5)[[4, 0, 2, 2]] * 0.8 + 0.04
    task = get_task("ordinal")
    assert task.decode(p, {}, grades) == ["4", "0", "2", "2"]
    assert task.label_strings(np.array([3, 1]), grades) == ["3", "1"]
    assert task.counts(np.array([3, 1, 3]), 5).tolist() == [0, 1, 0, 2, 0]
    assert not task.auto and task.primary == "qwk"


def test_binary_decodes_and_counts() -> None:
    task = get_task("binary")
    p = np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    decisions = task.fit_decisions(np.array([0, 1, 0]), p, PredictConfig())
    assert task.decode(p, decisions, ("neg", "pos")) == ["neg", "pos", "neg"]
    y = np.array([0, 0, 0, 1])
    assert task.counts(y, 2).tolist() == [3, 1] and task.label_strings(y, ("neg", "pos")) == ["neg"] * 3 + ["pos"]
    assert task.onehot(y, 2).tolist() == [[1, 0], [1, 0], [1, 0], [0, 1]]
    assert np.allclose(task.balanced_weights(y, 2), [4 / 6, 4 / 2])


def test_multilabel_fits_or_keeps_the_threshold() -> None:
    from podium.tasks.metrics import fit_threshold

    rng = np.random.default_rng(1)
    y = (rng.random((120, 4)) < 0.3).astype(int)
    p = np.clip(y * 0.3 + rng.random((120, 4)) * 0.5, 0, 1)
    task = get_task("multilabel")
    assert task.fit_decisions(y, p, PredictConfig()) == {"threshold": fit_threshold(y, p)}
    assert task.fit_decisions(y, p, PredictConfig(threshold=0.35)) == {"threshold": 0.35}


def test_multilabel_decodes_space_joined_rows_never_empty() -> None:
    task = get_task("multilabel")
    p = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3], [0.6, 0.1, 0.7], [0.01, 0.02, 0.0]])
    assert task.decode(p, {"threshold": 0.5}, C3) == ["a b", "c", "a c", "b"]
    assert all(task.decode(p, {"threshold": 0.99}, C3))  # the most likely class where none passes
    assert task.decode(p, {}, C3) == task.decode(p, {"threshold": 0.5}, C3)  # default threshold 0.5
    assert (task.predict(p, {"threshold": 0.5}) == decode_multilabel(p, 0.5)).all()


def test_multilabel_targets_strings_counts_and_weights() -> None:
    task = get_task("multilabel")
    y = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]])
    assert task.label_strings(y, C3) == ["a b", "c", "", "a c"]
    assert task.counts(y, 3).tolist() == [2, 1, 2]
    assert task.onehot(y, 3) is not None and (task.onehot(y, 3) == y).all()
    assert np.allclose(task.balanced_weights(y, 3), [1.0, 3.0, 1.0])


def test_tasks_read_raw_labels_and_detection_is_a_lookup() -> None:
    single, multi = [["a"], ["b"], ["c"], ["a"]], [["a", "b"], ["c"], ["a"]]
    assert detect_task(single, C3).name == "multiclass"
    assert detect_task([["x"], ["y"]], ("x", "y")).name == "binary"
    assert detect_task(multi, C3).name == "multilabel"
    assert get_task("multiclass").from_labels(single, C3).tolist() == [0, 1, 2, 0]
    assert get_task("multilabel").from_labels(multi, C3).tolist() == [[1, 1, 0], [0, 0, 1], [1, 0, 0]]
    assert get_task("multilabel").from_labels(single, C3).sum(axis=1).tolist() == [1, 1, 1, 1]
    with pytest.raises(PodiumError, match="data.task=ordinal needs one label per row, but rows 2"):
        get_task("ordinal").from_labels(multi, C3)
    with pytest.raises(PodiumError, match="data.task=binary but there are 3 classes"):
        get_task("binary").from_labels(single, C3)
    with pytest.raises(PodiumError, match="single class"):
        get_task("multiclass").from_labels([["a"], ["a"]], ("a",))


@dataclasses.dataclass(frozen=True)
class ExpectedGrade(SingleLabelTask):
    """An ordinal task decoded by the rounded expected grade instead of the most likely one."""

    def predict(self, probs: np.ndarray, decisions: dict) -> np.ndarray:
        return np.rint(probs @ np.arange(probs.shape[1])).astype(np.int64)


def test_a_new_task_variant_works_through_every_module(tmp_path: Path) -> None:
    import datagen
    from podium.config import DataConfig
    from podium.data.folders.ingest import load_competition
    from podium.data.training.folds import make_folds
    from podium.tasks.metrics import per_class, score
    from podium.tasks.submission import default_format, write_submission

    task = ExpectedGrade("expected_grade", "ce", ("qwk", "accuracy"), "qwk", "class", ("probs", "label"), auto=False)
    TASKS.register(task.name)(task)
    try:
        root = datagen.folders(tmp_path / "g", per_class=6, classes=("0", "1", "2"))
        comp = load_competition(root, DataConfig(task="expected_grade"), check=False)
        assert comp.task is task and comp.label_strings()[:1] == ["0"]
        folds = make_folds(comp.targets, comp.task, 3, 0)
        assert sorted(set(folds.tolist())) == [0, 1, 2]
        p = np.tile([[0.45, 0.1, 0.45]], (len(comp.targets), 1))  # argmax 0, expected grade 1
        assert task.decode(p[:1], {}, comp.classes) == ["1"]
        assert per_class(task, comp.targets, p, list(comp.classes))["1"]["recall"] == 1.0
        assert set(score(task, comp.targets, p)) == {"qwk", "accuracy"}
        fmt = default_format(task, list(comp.classes), ["x"])
        assert write_submission(tmp_path / "s.csv", fmt, ["x"], p[:1], list(comp.classes), 0.5)["label"].tolist() \
            == ["0"]  # the label format writes the argmax; a task-specific decoder would be a format of its own
        assert detect_task([["a"], ["b"], ["c"]], C3).name == "multiclass"  # auto=False: never guessed
    finally:
        TASKS.unregister(task.name)
    assert "expected_grade" not in TASKS


# ------------------------------------------------------------------------ variants declare the shapes they fit


def test_each_task_finds_its_stratifier_formats_and_metrics_from_its_target_shapes() -> None:
    from podium.tasks.metrics import fitting_metrics

    found = {name: (get_task(name).stratify, get_task(name).submissions) for name in TASKS}
    assert found == {"binary": ("class", ("probs", "prob", "label")), "multiclass": ("class", ("probs", "label")),
                     "ordinal": ("class", ("probs", "label")), "multilabel": ("iterative", ("probs", "labels"))}
    assert "roc_auc" in fitting_metrics("binary") and "roc_auc" not in fitting_metrics("multiclass")
    assert "sample_f1" in fitting_metrics("multilabel") and "qwk" not in fitting_metrics("multilabel")
    # given ones win over found ones, and a copy keeps them
    task = dataclasses.replace(get_task("multiclass"), submissions=("label",), stratify="iterative")
    assert task.submissions == ("label",) and task.with_metric("macro_f1").stratify == "iterative"


@dataclasses.dataclass(frozen=True)
class _Soft(SingleLabelTask):
    """A throwaway task whose targets have a shape no built-in variant declares."""

    shapes = ("soft",)


def test_a_new_target_shape_is_met_by_the_variants_that_declare_it_and_by_no_other() -> None:
    from podium.tasks.metrics import METRICS, Metric, check_metric, fitting_metrics
    from podium.tasks.stratifiers import STRATIFIERS, Stratifier, by_class
    from podium.tasks.submission import FORMATS

    task = _Soft("soft", "ce", ("soft_score",), "soft_score")
    TASKS.register(task.name)(task)
    STRATIFIERS.register("soft_split")(Stratifier(by_class, ("soft",)))
    METRICS.register("soft_score")(Metric(lambda y, p, t=0.5: 1.0, reads=("soft",)))
    FORMATS.register("soft_probs")(dataclasses.replace(FORMATS.get("probs"), shapes=("soft",)))
    try:
        assert task.stratify == "soft_split" and task.submissions == ("soft_probs",)
        assert fitting_metrics("soft") == ["soft_score"]  # a metric of decoded labels reads class or 0/1 targets
        check_metric("soft_score", "soft")
        with pytest.raises(PodiumError, match="does not fit the multiclass task; it fits soft"):
            check_metric("soft_score", "multiclass")
        assert get_task("multiclass").stratify == "class" and "soft_probs" not in get_task("binary").submissions
    finally:
        for registry, name in ((TASKS, "soft"), (STRATIFIERS, "soft_split"), (METRICS, "soft_score"),
                               (FORMATS, "soft_probs")):
            registry.unregister(name)
    with pytest.raises(PodiumError, match="No registered fold stratifier fits the soft task"):
        _ = task.stratify


def test_each_task_says_how_sure_and_how_wrong_a_prediction_is() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    truth = np.array([[0, 1, 0], [0, 0, 1]])
    single, multi = get_task("multiclass"), get_task("multilabel")
    assert np.allclose(single.confidence(p), [0.7, 0.6])
    assert np.allclose(single.row_loss(truth, p), -np.log([0.2, 0.6]))
    assert single.worst_class(truth, p).tolist() == [0, 2]  # the predicted class
    assert np.allclose(multi.confidence(p), [0.7, 0.6])  # the least sure class: 0.7 off, 0.6 on
    assert np.allclose(multi.row_loss(truth, p), [-np.mean(np.log([0.3, 0.2, 0.9])), -np.mean(np.log([0.9, 0.7, 0.6]))])
    assert multi.worst_class(truth, p).tolist() == [1, 2]  # the class scored furthest from its target


def test_grades_put_a_task_that_ranks_its_classes_first() -> None:
    from podium.tasks.task import detect_task

    lists, classes = [["0"], ["1"], ["2"]], ["0", "1", "2"]
    assert detect_task(lists, classes).name == "multiclass"
    assert detect_task(lists, classes, grades=True).name == "ordinal"
    assert detect_task([["0", "1"], ["2"]], classes, grades=True).name == "multilabel"  # ordinal cannot read sets
