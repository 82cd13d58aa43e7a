from pathlib import Path

import pytest

from podium.config import PodiumConfig, config_hash, dump_yaml, help_text, load_config, merge
from podium.errors import PodiumError


def test_defaults_and_overrides_are_typed() -> None:
    cfg = load_config(None, ["train.epochs=3", "train.lr=0.01", "train.ema=false", "predict.tta=identity,vflip",
                             "cv.train_folds=[0, 2]", "model.name=resnet34"])
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == 0.01 and cfg.train.ema is False
    assert cfg.predict.tta == ("identity", "vflip") and cfg.cv.train_folds == (0, 2)
    assert merge(cfg, ["cv.train_folds=0,7"]).cv.train_folds == (0, 7)
    assert merge(cfg, ["cv.train_folds=0"]).cv.train_folds == (0,)
    assert cfg.model.name == "resnet34" and cfg.data.task == "auto"


def test_int_is_accepted_for_float_and_strings_stay_strings() -> None:
    cfg = merge(PodiumConfig(), ["train.lr=1", "run.name=2024", "data.label_sep=;"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.run.name == "2024" and cfg.data.label_sep == ";"


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  name: resnet18\n  img_size: 64\ntrain:\n  epochs: 7\n")
    cfg = load_config(path, ["train.epochs=2"])
    assert (cfg.model.name, cfg.model.img_size, cfg.train.epochs) == ("resnet18", 64, 2)


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = merge(PodiumConfig(), ["aug.ops=hflip", "train.batch_size=8"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(path) == cfg
    assert config_hash(load_config(path)) == config_hash(cfg)
    assert config_hash(merge(cfg, ["run.name=other"])) == config_hash(cfg)
    assert config_hash(merge(cfg, ["train.epochs=99"])) != config_hash(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", "Unknown config key train.epoch. Did you mean epochs?"),
        ("trian.epochs=3", "Unknown config key trian"),
        ("train.epochs=three", "train.epochs must be int"),
        ("train.ema=maybe", "train.ema must be bool"),
        ("train.epochs", "must look like section.key=value"),
        ("epochs=3", "must be section.key"),
    ],
)
def test_bad_overrides_are_clear_errors(override: str, message: str) -> None:
    with pytest.raises(PodiumError, match=message.replace(".", r"\.").replace("?", r"\?")):
        load_config(None, [override])


def test_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(PodiumError, match="not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("training:\n  epochs: 1\n")
    with pytest.raises(PodiumError, match="Unknown config key training"):
        load_config(unknown)


def test_config_is_frozen() -> None:
    cfg = PodiumConfig()
    with pytest.raises(AttributeError):
        cfg.train.epochs = 2  # type: ignore[misc]


def test_help_lists_every_key() -> None:
    text = help_text()
    for key in ("data.layout", "model.name", "aug.ops", "train.accum_steps", "cv.folds", "predict.tta", "run.root"):
        assert key in text


def test_atomic_writes_leave_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from podium.io import write_text

    path = write_text(tmp_path / "x.txt", "hi")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask and path.read_text() == "hi"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
