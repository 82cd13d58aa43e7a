"""The competitions as downloaded (tests/replicas.py): inspect, train and predict each with no data flags, and the
column rules of podium.data.folders.columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import replicas
from podium.config import DataConfig, PodiumConfig, load_config, merge
from podium.data.folders.columns import column_roles
from podium.data.folders.tables import read_table
from podium.data.inspection import inspect_data


@pytest.mark.parametrize("name", list(replicas.REPLICAS))
def test_each_replica_trains_and_submits_with_no_data_flags(name: str, tmp_path: Path, tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    expect = replicas.REPLICAS[name](tmp_path / name)
    run = train(expect.root, merge(PodiumConfig(), [*tiny, "predict.tta=identity"]))
    assert run.info["task"] == expect.task
    assert run.metrics["metric"] == run.info["metric"] == expect.metric  # the competition's metric, with no flags
    sub = pd.read_csv(run.submission_path, dtype=str, keep_default_na=False)
    assert tuple(sub.columns) == expect.columns and len(sub) == expect.test_rows
    sample = pd.read_csv(expect.root / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()  # the sample's ids, in its order
    if expect.group:  # the group column keeps a patient's rows in one fold
        folds = pd.read_csv(run.folds_path, dtype=str).merge(
            pd.read_csv(expect.root / "train.csv", dtype=str).rename(columns={expect.columns[0]: "id"}), on="id")
        assert (folds.groupby(expect.group)["fold"].nunique() == 1).all()


def test_predict_and_inspect_on_the_paddy_replica(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    from podium.api import predict
    from podium.pipeline import train

    expect = replicas.paddy(tmp_path / "paddy")
    summary = inspect_data(expect.root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "inspect")
    decided = "\n".join(summary["decided"])
    for words in ("layout csv", "task multiclass", "label column label", "no group column", "variety, age",
                  "metric accuracy (cv.metric=", "train_images/<label>/"):
        assert words in decided
    assert summary["columns"]["metadata_columns"] == ["variety", "age"]
    run = train(expect.root, merge(PodiumConfig(), list(tiny)))
    (run.path / "submission.csv").unlink()
    table = predict(run)
    assert len(table) == 4 and (run.path / "submission.csv").is_file()


def test_inspect_names_restating_columns_groups_and_suggests_ordinal(tmp_path: Path) -> None:
    siim = replicas.siim_isic(tmp_path / "siim")
    summary = inspect_data(siim.root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "i1")
    assert summary["columns"] == {"label_columns": ["target"], "group_column": "patient_id",
                                  "restating_columns": ["diagnosis", "benign_malignant"],
                                  "metadata_columns": ["sex", "age_approx", "anatom_site_general_challenge"]}
    assert any("metric roc_auc" in line for line in summary["decided"])
    aptos = replicas.aptos(tmp_path / "aptos")
    summary = inspect_data(aptos.root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "i2")
    assert any("data.task=ordinal" in line for line in summary["decided"])


def test_without_a_sample_the_label_is_found_by_name_or_as_0_1_columns(tmp_path: Path) -> None:
    siim = replicas.siim_isic(tmp_path / "siim")
    df = read_table(siim.root / "train.csv")
    roles = column_roles(df, "image_name", DataConfig(), None)
    assert roles.labels == ("target",) and roles.group == "patient_id"
    assert any("also named like a label: diagnosis; data.label_cols=diagnosis" in n for n in roles.notes)
    ranzcr = replicas.ranzcr(tmp_path / "ranzcr")
    roles = column_roles(read_table(ranzcr.root / "train.csv"), "StudyInstanceUID", DataConfig(), None)
    assert roles.labels == replicas.RANZCR and roles.group == "PatientID"
    overridden = column_roles(df, "image_name", DataConfig(group_col="sex", label_cols=("benign_malignant",)), None)
    assert overridden.group == "sex" and overridden.labels == ("benign_malignant",)


def test_cassava_names_its_integers_and_maps_the_2019_folders(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    expect = replicas.cassava(tmp_path / "cassava")
    extra = replicas.cassava_2019(tmp_path / "cassava-2019")
    summary = inspect_data(expect.root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "inspect")
    assert summary["class_names"]["3"] == "Cassava Mosaic Disease (CMD)"
    assert any("label_num_to_disease_map.json" in line for line in summary["decided"])
    run = train(expect.root, merge(PodiumConfig(), [*tiny, f"data.extra={extra}"]))
    folds = pd.read_csv(run.folds_path, dtype=str)
    extra_rows = folds[folds["source"] == "extra:cassava-2019"]
    assert len(extra_rows) == 15 and set(extra_rows["label"]) == {"0", "1", "2", "3", "4"}  # cmd -> 3, healthy -> 4
    assert extra_rows.set_index("id").loc["extra:cassava-2019/train/cmd/train-cmd-0.jpg", "label"] == "3"
    assert run.info["class_names"]["0"].startswith("Cassava Bacterial Blight")
    sub = pd.read_csv(run.submission_path, dtype=str)
    assert set(sub["label"]) <= {"0", "1", "2", "3", "4"}  # the submission keeps the integers


def test_inspect_and_the_log_say_which_metric_was_inferred_and_how_to_override(tmp_path: Path,
                                                                                 tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    pp = replicas.plant_pathology_2020(tmp_path / "pp2020")
    summary = inspect_data(pp.root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "i1")
    line = next(x for x in summary["decided"] if x.startswith("metric "))
    assert line.startswith("metric mean_auc (inferred from sample_submission.csv: one probability column per class")
    assert line.endswith("cv.metric=... overrides)")
    run = train(pp.root, merge(PodiumConfig(), list(tiny)))
    first = run.log_path.read_text().splitlines()[1]  # after the run folder: the data, task and metric
    assert "multiclass task, metric mean_auc (inferred from sample_submission.csv" in first
    assert "cv.metric=... overrides" in first
    aptos = replicas.aptos(tmp_path / "aptos")
    summary = inspect_data(aptos.root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "i2")
    assert summary["task"] == "ordinal" and "metric qwk (cv.metric=... overrides; the ordinal task's own)" in \
        summary["decided"]
    assert "task ordinal (integer grades in diagnosis; data.task=multiclass overrides)" in summary["decided"]
    run = train(aptos.root, merge(PodiumConfig(), list(tiny)))
    first = run.log_path.read_text().splitlines()[1]
    assert "ordinal task (integer grades in diagnosis; data.task=multiclass overrides), metric qwk" in first


def test_a_named_metric_or_task_overrides_what_the_folder_implies(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    pp = replicas.plant_pathology_2020(tmp_path / "pp2020")
    cfg = load_config(None, [f"run.root={tmp_path / 'runs'}", "cv.metric=log_loss"])
    assert "metric log_loss (set by cv.metric)" in inspect_data(pp.root, cfg, tmp_path / "i")["decided"]
    run = train(pp.root, merge(PodiumConfig(), [*tiny, "cv.metric=accuracy"]))
    assert run.metrics["metric"] == run.info["metric"] == "accuracy"
    aptos = replicas.aptos(tmp_path / "aptos")
    run = train(aptos.root, merge(PodiumConfig(), [*tiny, "data.task=multiclass"]))
    assert run.info["task"] == "multiclass" and run.metrics["metric"] == "accuracy"
    redux = replicas.dogs_vs_cats_redux(tmp_path / "redux")
    run = train(redux.root, merge(PodiumConfig(), [*tiny, "cv.metric=roc_auc"]))  # Aerial Cactus: 0.5, scored by AUC
    assert run.metrics["metric"] == "roc_auc"


def test_a_run_resumes_with_the_task_and_metric_it_started_with(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    """A run started before auto read grades as ordinal (and the sample's metric) resumes as it started: its folds
    were trained and picked for those."""
    import datagen
    from podium.pipeline import train

    aptos = replicas.aptos(tmp_path / "aptos")
    run = train(aptos.root, merge(PodiumConfig(), [*tiny, "data.task=multiclass", "cv.metric=macro_f1"]))
    half = datagen.unfinished(run.path, tmp_path / "runs" / "half")
    config = (half / "config.yaml").read_text()
    assert "task: multiclass" in config and "metric: macro_f1" in config
    (half / "config.yaml").write_text(config.replace("task: multiclass", "task: auto").replace("metric: macro_f1",
                                                                                              "metric: auto"))
    resumed = train(None, None, resume=half)
    assert resumed.info["task"] == "multiclass" and resumed.metrics["metric"] == "macro_f1"
    assert "task: auto" in (half / "config.yaml").read_text()  # the saved config is left as it was
