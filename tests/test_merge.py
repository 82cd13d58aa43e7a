"""``podium merge``: folds trained in separate runs (machines, notebook sessions) combine into one run whose OOF,
decisions, metrics and submission equal a run trained in one go; runs that are not parts of one run are refused."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

import datagen
import podium

# what differs between two runs of the same folds: wall time, speed and memory, not results
TIMING = {"peak_mem_mb", "peak_mb", "images_per_s"}


def without_timing(obj: object) -> object:
    """A metrics tree without the keys that time the run."""
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING and not k.endswith("_s")}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-fold run trained in one go, and the same run trained as folds 0,1 and fold 2 in two other runs (the
    second with the first's folds.csv as its cv.folds_file)."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("merge")
    data = datagen.csv_single(tmp / "comp")
    base = (*datagen.TINY, "cv.folds=3", f"run.root={tmp / 'runs'}")
    out = {"data": data, "tmp": tmp}
    out["single"] = podium.train(data, overrides=[*base, "run.name=single"]).path
    out["a"] = podium.train(data, overrides=[*base, "run.name=a", "cv.train_folds=0,1"]).path
    # the second part reads the first's folds, as a notebook session given the first run's folder would
    out["b"] = podium.train(data, overrides=[*base, "run.name=b", "cv.train_folds=2",
                                             f"cv.folds_file={out['a'] / 'folds.csv'}"]).path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def test_merged_run_equals_a_run_trained_in_one_go(parts: dict[str, Path]) -> None:
    merged = podium.merge(parts["a"], parts["b"], out=parts["tmp"] / "elsewhere" / "merged")
    single = parts["single"]
    assert merged.status == "done" and merged.folds_done() == [0, 1, 2]
    for name in ("oof.csv", "decisions.json", "test_predictions.csv", "submission.csv", "folds.csv"):
        assert (merged.path / name).read_bytes() == (single / name).read_bytes(), name
    assert without_timing(merged.metrics) == without_timing(json.loads((single / "metrics.json").read_text()))
    assert merged.config.cv.train_folds == ()
    for fold in range(3):  # the merged checkpoints carry the merged run's decisions, like the single run's
        assert merged.load_best(fold).decisions == podium.load(single).load_best(fold).decisions


def test_cli_merge_and_refusals(parts: dict[str, Path], cli) -> None:
    tmp = parts["tmp"]
    code, err = cli("merge", str(parts["a"]), str(parts["a"]), "--out", str(tmp / "twice"))
    assert code == 2 and "named twice" in err and not (tmp / "twice").exists()
    code, err = cli("merge", str(parts["a"]), str(parts["single"]), "--out", str(tmp / "overlap"))
    assert code == 2 and "Fold 0 is finished in both" in err and not (tmp / "overlap").exists()
    other = podium.train(parts["data"], overrides=[*datagen.TINY, "cv.folds=3", f"run.root={tmp / 'runs'}",
                                                    "run.name=other", "cv.train_folds=2", "train.lr=0.01"]).path
    code, err = cli("merge", str(parts["a"]), str(other), "--out", str(tmp / "lr"))
    assert code == 2 and "differ in train.lr" in err and not (tmp / "lr").exists()
    seeded = podium.train(parts["data"], overrides=[*datagen.TINY, "cv.folds=3", f"run.root={tmp / 'runs'}",
                                                     "run.name=seeded", "cv.train_folds=2", "cv.seed=9"]).path
    code, err = cli("merge", str(parts["a"]), str(seeded), "--out", str(tmp / "seed"))
    assert code == 2 and "differ in cv.seed" in err
    moved = tmp / "moved"  # the data at another path on this machine: --data names it
    shutil.copytree(parts["data"], moved)
    code, err = cli("merge", str(parts["a"]), str(parts["b"]), "--out", str(tmp / "m2"), "--data", str(moved))
    assert code == 0, err
    assert (tmp / "m2" / "submission.csv").read_bytes() == (parts["single"] / "submission.csv").read_bytes()
    code, err = cli("merge", str(parts["a"]), str(parts["b"]), "--out", str(tmp / "m2"))
    assert code == 2 and "already exists" in err


def test_a_part_still_running_is_refused_even_with_its_folds_finished(parts: dict[str, Path], cli) -> None:
    tmp = parts["tmp"]
    busy = tmp / "busy"  # part b, its fold finished, but its process (this one) still at work on the rest
    shutil.copytree(parts["b"], busy)
    info = json.loads((busy / "run.json").read_text())
    info.update(status="running", pid=os.getpid(), host=socket.gethostname())
    (busy / "run.json").write_text(json.dumps(info))
    assert podium.load(busy).folds_done() == [2]
    code, err = cli("merge", str(parts["a"]), str(busy), "--out", str(tmp / "early"))
    assert code == 2 and "is still running" in err and str(busy) in err and not (tmp / "early").exists()
    assert len(err.strip().splitlines()) == 1
    info.update(pid=2**22 + 1)  # its process gone (no pid is that high): interrupted, and its finished fold merges
    (busy / "run.json").write_text(json.dumps(info))
    code, err = cli("merge", str(parts["a"]), str(busy), "--out", str(tmp / "late"))
    assert code == 0, err
