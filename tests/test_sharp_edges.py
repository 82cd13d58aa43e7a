"""Bad inputs a new user tries, each answered with one line and nothing left behind (issue 20's list).

Each case failed before: YAML 1.1 override numbers that changed silently, an empty TTA list that died after a whole
fold, ``--out`` naming a folder, two runs racing on one folder name, a hostile weights pickle leaving a failed run
folder and torch's advice to load it unsafely, and file/folder mix-ups reported as "does not exist".
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest
import torch

import podium
from podium.config import load_config
from podium.core.errors import PodiumError
from podium.runs.files import new_folder


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.img_size=0x10", r"model.img_size"),  # YAML 1.1: hex 16
        ("train.epochs=1:30", r"train.epochs must be int, got '1:30'"),  # YAML 1.1: base 60, 90
        ("cv.folds=2_0", r"cv.folds must be int, got '2_0'"),  # YAML 1.1: 20
        ("train.lr=0x1", r"train.lr must be float, got '0x1'"),
        ("data.check_images=yes", r"data.check_images must be bool, got 'yes'"),  # YAML 1.1: True
    ],
)
def test_override_numbers_never_change_silently(override: str, message: str) -> None:
    with pytest.raises(PodiumError, match=message):
        load_config(None, [override])


def test_overrides_read_plain_yaml_1_2_values() -> None:
    cfg = load_config(None, ["data.class_order=[no, yes]", "train.lr=3e-4", "cv.folds=07", "data.check_images=false",
                             "model.img_size=[288, 224]", "cv.train_folds=[0, 1]"])
    assert cfg.data.class_order == ("no", "yes")  # words, not YAML 1.1 booleans
    assert (cfg.train.lr, cfg.cv.folds, cfg.data.check_images) == (3e-4, 7, False)
    assert (cfg.model.img_size, cfg.cv.train_folds) == ((288, 224), (0, 1))


def test_config_file_yaml_is_read_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("data:\n  class_order: [no, yes]\ntrain:\n  lr: 1e-3\n")
    cfg = load_config(path)
    assert cfg.data.class_order == ("no", "yes") and cfg.train.lr == 1e-3


def test_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  epochs: 3\n  lr: [0.1\nmodel: {name: x}\n")
    with pytest.raises(PodiumError) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "line " in msg and "column " in msg, msg
    with pytest.raises(PodiumError, match="is a folder; name the YAML file itself"):
        load_config(tmp_path)


@pytest.mark.parametrize("value", ["[]", ""])
def test_empty_tta_is_refused_at_load(value: str) -> None:
    with pytest.raises(PodiumError, match=r"^Config key predict.tta needs at least 1 item"):
        load_config(None, [f"predict.tta={value}"])
    with pytest.raises(PodiumError, match=r"^Config key predict.scales needs at least 1 item"):
        load_config(None, [f"predict.scales={value}"])


def test_runs_started_at_the_same_instant_get_their_own_folders(tmp_path: Path) -> None:
    made: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        try:
            barrier.wait()
            for _ in range(25):
                made.append(new_folder(tmp_path, "same"))
        except BaseException as e:  # noqa: BLE001 - the test reports any failure
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == 200 and len(set(made)) == 200 and all(p.is_dir() for p in made)


class Hostile:
    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(__file__).parent / "never-created",))  # would run if unpickled unsafely


def test_hostile_weights_pickle_is_refused_before_any_run_folder(single_dir: Path, tiny: tuple[str, ...],
                                                                  tmp_path: Path) -> None:
    bad = tmp_path / "w.pth"
    torch.save({"state_dict": Hostile()}, bad, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(PodiumError) as e:
        podium.train(single_dir, overrides=[*tiny, "model.pretrained=file", f"model.weights_path={bad}",
                                             "finetune.freeze_epochs=0"])
    msg = str(e.value)
    assert "holds Python objects" in msg and "weights_only" not in msg and "\n" not in msg, msg
    assert not (Path(__file__).parent / "never-created").exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("single-*"))


def test_file_and_folder_mix_ups_are_named(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="Search space file .* is a folder"):
        podium.search(single_dir, tmp_path, trials=1, overrides=tiny)
    run = podium.train(single_dir, overrides=[*tiny, "cv.train_folds=0"])
    with pytest.raises(PodiumError, match="Image folder .* is a file"):
        podium.predict(run, images=single_dir / "train.csv")
    out = tmp_path / "previews"
    out.mkdir()
    path = podium.preview(single_dir, overrides=tiny, out=out)
    assert path.parent == out and path.name == "preview-single.png" and path.stat().st_size > 0
