"""The Python API: what a notebook does, on the same library functions as the command line."""

from pathlib import Path

import pandas as pd
import pytest

import podium
from podium.core.errors import PodiumError


def test_train_predict_load_in_one_process(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    run = podium.train(single_dir, overrides=tiny, train={"epochs": 1}, run={"name": "api"})
    assert isinstance(run, podium.Run) and run.status == "done" and run.path.name.startswith("api-")
    assert run.metrics["metric"] == "accuracy" and 0 <= run.metrics["cv_score"] <= 1
    assert isinstance(run.oof, pd.DataFrame) and len(run.oof) == 48 and run.oof["id"].is_unique
    assert run.submission_path.is_file() and "cv accuracy" in repr(run)

    table = podium.predict(run, images=single_dir / "test_images")
    assert list(table.columns) == ["id", "label", "cat", "dog", "fox"] and len(table) == 12
    sub = podium.predict(run.path)  # the test set again, by path: the same submission
    assert sub.equals(pd.read_csv(run.submission_path, dtype=str, keep_default_na=False))

    again = podium.load(run.path)
    assert again.config == run.config and again.metrics == run.metrics and len(again.checkpoints()) == 2


def test_config_from_dicts_yaml_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("model: {name: resnet18}\ntrain: {epochs: 4}\n")
    cfg = podium.make_config(tmp_path / "cfg.yaml", ["train.lr=0.01"], train={"epochs": 7, "batch_size": 16})
    assert (cfg.model.name, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == ("resnet18", 7, 16, 0.01)
    assert podium.make_config({"cv": {"folds": 3}}).cv.folds == 3
    with pytest.raises(PodiumError, match="Unknown config section 'trian'"):
        podium.make_config(trian={"epochs": 1})
    with pytest.raises(PodiumError, match="Unknown config key train.epoch"):
        podium.make_config(train={"epoch": 1})


def test_load_rejects_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="does not exist"):
        podium.load(tmp_path / "nothing")
    with pytest.raises(PodiumError, match="not a podium run folder"):
        podium.load(tmp_path)


def test_a_second_run_in_one_process_with_another_precision_is_one_clear_error(single_dir: Path,
                                                                                tiny: tuple[str, ...]) -> None:
    podium.train(single_dir, overrides=tiny)
    with pytest.raises(PodiumError, match="Restart the kernel"):
        podium.train(single_dir, overrides=[*tiny, "train.precision=bf16"])


def test_package_exports_exactly_the_api_public_functions(monkeypatch) -> None:
    """``podium.__all__`` is ``Run`` and every public function of podium.api, both ways: a function added to the API
    is exported, and every exported name is the API's own, also where a subpackage or module has the same name
    (``podium.runs``, ``podium.models``, ``podium.demo``) and was imported since."""
    import importlib
    import importlib.util
    import inspect

    from podium import api
    from podium.runs.run import Run

    public = {name for name, obj in vars(api).items()
              if inspect.isfunction(obj) and obj.__module__ == api.__name__ and not name.startswith("_")}
    exported = set(podium.__all__)
    assert len(exported) == len(podium.__all__), "a name is listed twice in podium.__all__"
    assert sorted(exported - {"Run"} - public) == [], "exported but not a public function of podium.api"
    assert sorted(public - exported) == [], "public functions of podium.api missing from podium.__all__"
    assert podium.Run is Run
    shadowed = sorted(name for name in public if importlib.util.find_spec(f"podium.{name}") is not None)
    assert all(getattr(podium, name) is getattr(api, name) for name in public - set(shadowed))
    for name in shadowed:
        importlib.import_module(f"podium.{name}")
        monkeypatch.setattr(api, name, lambda *args, _name=name, **kwargs: (_name, args, kwargs))
        assert getattr(podium, name)(1, x=2) == (name, (1,), {"x": 2}), f"podium.{name} is not the API's"
