"""Suspect labels on every finished run (suspects.csv), and the actions of data.suspects: each changes exactly the
suspects' training rows, and validation keeps every given label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
import podium
from podium.config import PodiumConfig, merge
from podium.core.errors import PodiumError
from podium.data.integrity import prepare
from podium.engine.fold import trains_in
from podium.inference.noisy_labels import SUSPECT_ACTIONS, with_suspects
from podium.runs.run import Run
from podium.tasks.suspects import SUSPECT_COLUMNS

GRADES = ("0", "1", "2", "3")


def _check_table(run: Run) -> pd.DataFrame:
    table = run.suspects()
    assert table is not None and tuple(table.columns) == SUSPECT_COLUMNS
    oof = table[table["source"] == "oof"]
    assert set(oof["id"]) <= set(run.oof["id"].astype(str))
    assert list(oof["quality"]) == sorted(oof["quality"])  # worst first
    assert ((oof["quality"] >= 0) & (oof["quality"] <= 1)).all()
    return table


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "ordinal"])
def test_every_task_writes_suspects(kind: str, tmp_path: Path, tiny: tuple[str, ...]) -> None:
    if kind == "multiclass":
        data, extra = datagen.csv_single(tmp_path / "d", n=48), ()
    elif kind == "multilabel":
        data, extra = datagen.csv_multilabel(tmp_path / "d"), ()
    else:
        data, extra = datagen.folders(tmp_path / "d", per_class=8, classes=GRADES), ("data.task=ordinal",)
    run = podium.train(data, overrides=[*tiny, *extra, "train.epochs=2"])
    table = _check_table(run)
    given = dict(zip(run.oof["id"].astype(str), run.oof["label"].astype(str)))
    oof = table[table["source"] == "oof"]
    assert all(given[i] == g for i, g in zip(oof["id"], oof["given"]))  # the given label, as oof.csv has it


def _source_with(data: Path, tiny: tuple[str, ...], suspects: pd.DataFrame) -> Run:
    """A finished source run whose suspects.csv is replaced by a known table."""
    src = podium.train(data, overrides=[*tiny, "run.name=source"])
    src.write_suspects(suspects)
    return src


def _planted(comp_ids: list[str], classes: tuple[str, ...], labels: list[str]) -> pd.DataFrame:
    """Three suspects with known suggestions and qualities, and a conflict row that no action may touch."""
    rows = [(comp_ids[i], labels[i], classes[(classes.index(labels[i]) + 1) % len(classes)], q)
            for i, q in ((1, 0.05), (4, 0.2), (7, 0.6))]
    table = pd.DataFrame([{"id": i, "fold": 0, "given": g, "suggested": s, "quality": q, "source": "oof"}
                          for i, g, s, q in rows])
    clash = pd.DataFrame([{"id": comp_ids[10], "fold": -1, "given": labels[10], "suggested": "", "quality": np.nan,
                           "source": "duplicate conflict (cluster 3)"}])
    return pd.concat([table, clash], ignore_index=True)


@pytest.fixture
def planted(single_dir: Path, tiny: tuple[str, ...]) -> tuple[Run, pd.DataFrame]:
    table = pd.read_csv(single_dir / "train.csv", dtype=str)
    planted = _planted(table["image_id"].tolist(), ("cat", "dog", "fox"), table["label"].tolist())
    return _source_with(single_dir, tiny, planted), planted


@pytest.mark.parametrize("action", SUSPECT_ACTIONS.names())
def test_each_action_changes_exactly_the_suspects_training_rows(action: str, single_dir: Path,
                                                                 tiny: tuple[str, ...],
                                                                 planted: tuple[Run, pd.DataFrame]) -> None:
    src, table = planted
    cfg = merge(PodiumConfig(), [*tiny, f"data.suspects={src.path}", f"data.suspect_action={action}"])
    comp, _ = prepare(single_dir, cfg.data)
    folds = src.folds_table.set_index("id").loc[comp.train["id"], "fold"].to_numpy()
    out, info = with_suspects(comp, folds, cfg)
    oof = table[table["source"] == "oof"]
    rows = comp.train.index[comp.train["id"].isin(oof["id"])].to_numpy()
    others = np.setdiff1d(np.arange(len(comp.train)), rows)
    assert info["action"] == action and info["rows"] == 3
    assert np.array_equal(out.targets, comp.targets)  # validation, metrics and folds keep the given labels
    onehot = comp.task.onehot(comp.targets, 3).astype(np.float32)
    if out.train_targets is not None:  # relabel, soft: what the loss sees
        assert np.array_equal(out.train_targets[others], onehot[others])
        assert not np.allclose(out.train_targets[rows], onehot[rows])
    if out.train_weights is not None:  # drop, weight: how often a row trains
        assert (out.train_weights[others] == 1).all() and (out.train_weights[rows] < 1).all()
    by_id = dict(zip(oof["id"], zip(oof["suggested"], oof["quality"])))
    for r in rows:
        suggested, quality = by_id[comp.train["id"].iloc[r]]
        target = np.array([c == suggested for c in comp.classes], dtype=np.float32)
        if action == "relabel":
            assert np.array_equal(out.train_targets[r], target)
        elif action == "weight":
            assert out.train_weights[r] == pytest.approx(quality)
        elif action == "drop":
            fold = folds[r]
            assert out.train_weights[r] == 0 and not trains_in(out, folds, 1 - fold)[r]  # never trains
            assert (folds == fold)[r]  # ... and still validates its own fold
        else:  # soft: the less the label is believed, the more the source's OOF probabilities count
            probs = src.oof.set_index("id").loc[comp.train["id"].iloc[r], list(comp.classes)].to_numpy(float)
            assert out.train_targets[r] == pytest.approx(quality * onehot[r] + (1 - quality) * probs, abs=1e-5)


def test_actions_train_end_to_end_and_are_recorded(single_dir: Path, tiny: tuple[str, ...],
                                                   planted: tuple[Run, pd.DataFrame]) -> None:
    src, _ = planted
    for action in SUSPECT_ACTIONS.names():
        run = podium.train(single_dir, overrides=[*tiny, f"data.suspects={src.path}", f"data.suspect_action={action}",
                                                  f"run.name={action}"])
        assert run.info["sources"]["suspects"]["action"] == action
        assert run.info["sources"]["suspects"]["rows"] == 3
        assert len(run.oof) == len(src.oof)  # every row still validated
    compared = podium.compare(run.path, src.path)
    assert {"data.suspects", "data.suspect_action"} <= {k for k, _, _ in compared["config"]}
    assert ("suspects action", "weight (3 rows)", None) in compared["numbers"]


def test_a_source_on_other_folds_and_an_unknown_action_are_refused(single_dir: Path,
                                                                          tiny: tuple[str, ...]) -> None:
    src = podium.train(single_dir, overrides=[*tiny, "run.name=source", "cv.seed=7"])
    with pytest.raises(PodiumError, match=r"data.suspects=.* was trained on other folds"):
        podium.train(single_dir, overrides=[*tiny, f"data.suspects={src.path}"])
    with pytest.raises(PodiumError, match="data.suspect_action: unknown suspect action 'dropp'.*Did you mean 'drop'"):
        podium.train(single_dir, overrides=[*tiny, f"data.suspects={src.path}", "data.suspect_action=dropp"])


def test_a_loss_that_cannot_fit_a_named_task_is_refused_at_load(single_dir: Path, tiny: tuple[str, ...],
                                                                tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="train.loss=bce reads multihot targets; the multiclass task's are class"):
        podium.train(single_dir, overrides=[*tiny, "data.task=multiclass", "train.loss=bce"])
    with pytest.raises(PodiumError, match="train.loss=cumulative codes ordered grades"):
        podium.train(single_dir, overrides=[*tiny, "data.task=multiclass", "train.loss=cumulative"])
    assert not (tmp_path / "runs").exists()  # refused before any folder
