"""A run folder handed over by someone else runs none of its code (issue 29, item 8).

The runs here were trained with a user metric whose module writes a marker file when it is imported. Every command
that reads such a saved folder either finishes without importing it (scores are ranked by the saved cv_score and the
direction saved in the metric's name) or refuses in one line that names the metric and the ``--metric`` flag; named
again on the command line, the metric runs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import datagen
import podium
from podium.core.errors import PodiumError
from podium.tasks.metrics import get_metric, metric_key, resolve_metric, trusted_metrics
from podium.tasks.task import get_task

EVIL = "import pathlib\npathlib.Path(__file__).with_name('marker').touch()\n" \
       "def score(y, p):\n    return float((p.argmax(1) == y).mean())\nscore.greater_is_better = True\n"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two full runs and two parts of one run (folds 0 and 1, in another runs root), all scored by the user metric
    in evil.py."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("untrusted")
    (tmp / "evil.py").write_text(EVIL)
    data = datagen.csv_single(tmp / "comp")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}", f"cv.metric={tmp / 'evil.py'}:score")
    out = {"tmp": tmp, "data": data, "root": tmp / "runs", "spec": Path(f"{tmp / 'evil.py'}:score")}
    out["one"] = podium.train(data, overrides=[*base, "run.name=one"]).path
    out["two"] = podium.train(data, overrides=[*base, "run.name=two", "train.lr=0.01"]).path
    parts = (*base, f"run.root={tmp / 'parts'}")  # not in the log that --top reads
    out["a"] = podium.train(data, overrides=[*parts, "run.name=a", "cv.train_folds=0"]).path
    out["b"] = podium.train(data, overrides=[*parts, "run.name=b", "cv.train_folds=1",
                                             f"cv.folds_file={out['a'] / 'folds.csv'}"]).path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def commands(p: dict[str, Path]) -> dict[str, list[str]]:
    """Every command that reads a saved run folder, on the planted folders."""
    interrupted = p["tmp"] / "interrupted"
    if not interrupted.exists():
        shutil.copytree(p["one"], interrupted)
        info = json.loads((interrupted / "run.json").read_text())
        (interrupted / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    root = str(p["root"])
    return {
        "runs": ["runs", "--root", root],
        "compare": ["runs", "--root", root, "--compare", str(p["one"]), str(p["two"])],
        "ensemble": ["ensemble", str(p["one"]), str(p["two"]), "--root", root, "--name", "members"],
        "ensemble --top": ["ensemble", "--top", "2", "--root", root, "--name", "top"],
        "resume": ["resume", str(interrupted)],
        "merge": ["merge", str(p["a"]), str(p["b"]), "--out", str(p["tmp"] / "merged")],
        "report": ["report", str(p["one"])],
        "predict": ["predict", str(p["one"]), "--out", str(p["tmp"] / "pred.csv")],
        "predict --images": ["predict", str(p["one"]), "--images", str(p["data"] / "test_images"),
                             "--out", str(p["tmp"] / "images.csv")],
        "predict --data": ["predict", str(p["one"]), "--data", str(p["data"]), "--out", str(p["tmp"] / "sub.csv")],
        "export": ["export", str(p["one"]), "--out", str(p["tmp"] / "model.onnx")],
    }


@pytest.mark.parametrize("name", ["runs", "compare", "ensemble", "ensemble --top", "resume", "merge", "report",
                                  "predict", "predict --images", "predict --data", "export"])
def test_a_handed_run_folder_runs_none_of_its_code(planted: dict[str, Path], cli, name: str) -> None:
    marker = planted["tmp"] / "marker"
    marker.unlink(missing_ok=True)
    code, err = cli(*commands(planted)[name])
    assert not marker.exists(), f"{name} imported the saved metric"
    assert code in (0, 2), err
    if code == 2:  # the refusal: one line naming the metric and the flag that trusts it
        assert len(err.strip().splitlines()) == 1 and f"--metric {planted['spec']}" in err, err
    assert not (planted["tmp"] / "merged").exists()  # nothing half-written by a refusal


def test_the_metric_runs_when_the_user_names_it_again(planted: dict[str, Path], cli) -> None:
    marker = planted["tmp"] / "marker"
    marker.unlink(missing_ok=True)
    code, err = cli("ensemble", str(planted["one"]), str(planted["two"]), "--root", str(planted["root"]),
                    "--name", "trusted", "--metric", str(planted["spec"]))
    assert code == 0, err
    assert marker.exists()
    [folder] = planted["root"].glob("trusted*")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["metric"] == f"{planted['spec']}:max"  # the direction is saved with the name
    marker.unlink()  # the ensemble folder, handed on: predicted and reported without its metric's code
    for args in (["report", str(folder)], ["predict", str(folder), "--data", str(planted["data"]), "--out",
                                           str(planted["tmp"] / "ens.csv")]):
        code, err = cli(*args)
        assert not marker.exists() and (code == 0 or "--metric" in err), (args, err)
    code, err = cli(*commands(planted)["resume"], "--metric", str(planted["spec"]))
    assert code == 0 and marker.exists(), err


def test_a_module_on_the_path_is_refused_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evilmod.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    with trusted_metrics("othermod:score"), pytest.raises(PodiumError, match="--metric evilmod:score[.]$"):
        resolve_metric(get_task("binary"), "evilmod:score")
    assert not (tmp_path / "marker").exists() and "evilmod" not in sys.modules
    assert resolve_metric(get_task("binary"), "evilmod:score").primary == "evilmod:score:max"  # a library caller


def test_ranking_saved_scores_never_imports(planted: dict[str, Path]) -> None:
    marker = planted["tmp"] / "marker"
    marker.unlink(missing_ok=True)
    assert metric_key(f"{planted['spec']}:min", 0.2) > metric_key(f"{planted['spec']}:min", 0.3)
    assert metric_key(f"{planted['spec']}:max", 0.3) > metric_key(f"{planted['spec']}:max", 0.2)
    with trusted_metrics(), pytest.raises(PodiumError, match="not by you"):
        get_metric(f"{planted['spec']}:max")
    assert not marker.exists()
    with trusted_metrics(f"{planted['spec']}:min"):  # trusted by module:function, whatever the direction says
        assert get_metric(f"{planted['spec']}:max").greater_is_better
    assert marker.exists()


def test_a_metric_flag_that_names_no_user_metric_is_one_line(planted: dict[str, Path], cli) -> None:
    resume = commands(planted)["resume"]
    for value in ("accuracy", "a:b:c:d"):
        code, err = cli(*resume, "--metric", value)
        assert code == 2 and f"--metric {value!r} must name a user metric" in err, err
