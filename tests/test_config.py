import dataclasses
import importlib
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import datagen
from podium.config import PodiumConfig, config_hash, dump_yaml, from_dict, load_config, merge, to_dict
from podium.config_checks import BOUNDS, choice_names, range_text
from podium.core.errors import PodiumError
from podium.validation import REGISTRY_KEYS, help_text, validate


def test_defaults_and_overrides_are_typed() -> None:
    cfg = load_config(None, ["train.epochs=3", "train.lr=0.01", "train.ema=false", "predict.tta=identity,vflip",
                             "cv.train_folds=[0, 2]", "model.name=resnet34"])
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == 0.01 and cfg.train.ema is False
    assert cfg.predict.tta == ("identity", "vflip") and cfg.cv.train_folds == (0, 2)
    assert merge(cfg, ["cv.train_folds=0,3"]).cv.train_folds == (0, 3)
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
    assert (cfg.model.name, cfg.model.img_size, cfg.train.epochs) == ("resnet18", (64,), 2)


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

    from podium.core.io import write_text

    path = write_text(tmp_path / "x.txt", "hi")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask and path.read_text() == "hi"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


# ------------------------------------------------------------------------------------- values checked at load time

def _fields() -> list[tuple[str, dataclasses.Field, Any]]:
    """(section.key, field, type) of every leaf field."""
    out = []
    for group in dataclasses.fields(PodiumConfig):
        cls = typing.get_type_hints(PodiumConfig)[group.name]
        hints = typing.get_type_hints(cls)
        out += [(f"{group.name}.{f.name}", f, hints[f.name]) for f in dataclasses.fields(cls)]
    return out


CHOICE_KEYS = {  # key -> (registry path or fixed list, reserved words)
    "data.layout": ("podium.data.folders.layouts:LAYOUTS", ("auto",)),
    "data.label_from": (("auto", "name"), ()),
    "data.task": ("podium.tasks.task:TASKS", ("auto",)),
    "data.csv_sep": ("podium.data.folders.tables:SEPARATORS", ("auto",)),
    "data.csv_encoding": ("podium.data.folders.tables:ENCODINGS", ("auto",)),
    "data.conflicts": ("podium.data.integrity:CONFLICT_POLICIES", ()),
    "data.cache_format": ("podium.data.pixels.cache_formats:CACHE_FORMATS", ("auto",)),
    "data.suspect_action": ("podium.inference.noisy_labels:SUSPECT_ACTIONS", ()),
    "model.pretrained": ("podium.models.weights:WEIGHT_SOURCES", ()),
    "model.head": ("podium.models.heads:HEADS", ()),
    "model.resize": ("podium.data.training.transforms:RESIZES", ()),
    "finetune.bn": ("podium.engine.finetune:BN_MODES", ()),
    "aug.ops": ("podium.data.training.transforms:AUGMENTATIONS", ()),
    "aug.batch": ("podium.data.training.batch_aug:BATCH_AUGS", ()),
    "train.optimizer": ("podium.engine.optim:OPTIMIZERS", ()),
    "train.schedule": ("podium.engine.optim:SCHEDULES", ()),
    "train.sampler": ("podium.data.training.dataset:SAMPLERS", ()),
    "train.loss": ("podium.engine.losses:LOSSES", ("auto",)),
    "train.class_weights": ("podium.engine.losses:CLASS_WEIGHTS", ()),
    "train.precision": (("auto", "no", "bf16", "fp16"), ()),
    "train.device": (("auto", "cpu", "cuda", "mps"), ()),
    "data.pseudo_share": (("all", "fold"), ()),
    "data.pseudo_folds": (("matched", "averaged"), ()),
    "predict.tta": ("podium.engine.tta:VIEWS", ()),
    "cv.metric": ("podium.tasks.metrics:METRICS", ("auto",)),
    "data.preprocess": ("podium.data.pixels.image_ops:IMAGE_OPS", ()),
    "predict.threshold_mode": ("podium.tasks.thresholds:THRESHOLD_MODES", ()),
    "predict.binary_threshold": ("podium.tasks.thresholds:BINARY_RULES", ()),
    "run.trackers": ("podium.engine.trackers:TRACKERS", ()),
}


def _registry(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _choices(key: str) -> tuple[str, tuple[str, ...]] | None:
    """What podium.validation accepts for ``key``: its registry's names, or the field's fixed list."""
    meta = next(f.metadata for k, f, _ in _fields() if k == key)
    return choice_names(meta, key, REGISTRY_KEYS.get(key))


def test_choice_keys_declare_their_registry() -> None:
    """Fixed lists live on the field; registered names are mapped to their registry by podium.validation."""
    fixed = {key: (f.metadata["choices"], f.metadata["reserved"]) for key, f, _ in _fields()
             if f.metadata["choices"] is not None}
    registered = {key: (path, next(f.metadata["reserved"] for k, f, _ in _fields() if k == key))
                  for key, (path, _) in CHOICE_KEYS.items() if isinstance(path, str)}
    assert {**fixed, **registered} == CHOICE_KEYS
    assert {key: REGISTRY_KEYS[key] for key in registered} == {k: _registry(p) for k, (p, _) in registered.items()}
    assert set(REGISTRY_KEYS) == set(registered)


def test_config_does_not_import_the_registries() -> None:
    """podium.config is a leaf: loading it imports no other podium module than its value checks and the errors."""
    code = "import sys, podium.config; print(sorted(m for m in sys.modules if m.startswith('podium')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(["podium", "podium.config", "podium.config_checks", "podium.core",
                                      "podium.core.errors"])


@pytest.mark.parametrize(
    ("override", "key", "value", "kind", "suggestion"),
    [
        ("data.layout=csvs", "data.layout", "csvs", "layout", "csv"),
        ("data.task=multiclas", "data.task", "multiclas", "task", "multiclass"),
        ("data.conflicts=dorp", "data.conflicts", "dorp", "conflict policy", "drop"),
        ("model.pretrained=hubb", "model.pretrained", "hubb", "weight source", "hub"),
        ("model.head=lnear", "model.head", "lnear", "head", "linear"),
        ("model.resize=squahs", "model.resize", "squahs", "resize method", "squash"),
        ("finetune.bn=froze", "finetune.bn", "froze", "BatchNorm mode", "frozen_eval"),
        ("aug.ops=hflip,vfilp", "aug.ops[1]", "vfilp", "augmentation", "vflip"),
        ("train.loss=bcee", "train.loss", "bcee", "loss", "bce"),
        ("train.class_weights=balance", "train.class_weights", "balance", "class weighting", "balanced"),
        ("train.precision=BF16", "train.precision", "BF16", "precision", "bf16"),
        ("train.device=cdua", "train.device", "cdua", "device", "cuda"),
        ("predict.tta=identity,hflp", "predict.tta[1]", "hflp", "TTA view", "hflip"),
        ("run.trackers=tensorbord", "run.trackers[0]", "tensorbord", "tracker", "tensorboard"),
    ],
)
def test_unknown_names_are_one_line_with_did_you_mean(override: str, key: str, value: str, kind: str,
                                                       suggestion: str) -> None:
    with pytest.raises(PodiumError) as e:
        validate(load_config(None, [override]))
    msg = str(e.value)
    assert msg.startswith(f"Config key {key}: unknown {kind} {value!r}; choose from ") and "\n" not in msg
    assert msg.endswith(f"Did you mean {suggestion!r}?")
    assert f" {suggestion}," in msg or f" {suggestion}." in msg  # the choices are listed


def test_no_did_you_mean_when_nothing_is_close() -> None:
    with pytest.raises(PodiumError) as e:
        validate(load_config(None, ["train.loss=hinge"]))
    assert str(e.value) == ("Config key train.loss: unknown loss 'hinge'; choose from auto, ce, bce, focal, "
                            "cumulative, regression, bitempered, taylor, sce, gce.")


@pytest.mark.parametrize("key", sorted(CHOICE_KEYS))
def test_every_registered_name_and_reserved_word_is_accepted(key: str) -> None:
    names = _choices(key)
    assert names is not None
    for name in names[1]:
        section, field = key.split(".")
        cfg = validate(load_config(None, [f"{key}={name}", "train.epochs=2"]))
        value = getattr(getattr(cfg, section), field)
        assert value == ((name,) if isinstance(value, tuple) else name)


NUMBER_FIELDS = [(key, f) for key, f, tp in _fields() if tp in (int, float, tuple[int, ...])]


def test_every_number_declares_a_range() -> None:
    assert len(NUMBER_FIELDS) >= 30  # the fields are found (the count grows with new options)
    assert [key for key, f in NUMBER_FIELDS if not any(b in f.metadata for b in BOUNDS)] == []


def _outside(f: dataclasses.Field, is_int: bool) -> list[Any]:
    """Values just outside each declared bound (and not among the values it also allows, such as -1)."""
    step = 1 if is_int else 1e-3
    meta = f.metadata
    below = None if "ge" not in meta else meta["ge"] - step
    while below is not None and below in meta.get("also", ()):
        below -= step
    return [v for v in (meta.get("gt"), below, meta.get("lt"), None if "le" not in meta else meta["le"] + step)
            if v is not None]


@pytest.mark.parametrize(("key", "f"), NUMBER_FIELDS, ids=[k for k, _ in NUMBER_FIELDS])
def test_numbers_out_of_range_fail_and_defaults_pass(key: str, f: dataclasses.Field) -> None:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    is_int = isinstance(default, int) or isinstance(default, tuple)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
    load_config(None, [f"{key}={shown}"])  # the default is inside the range
    outside = _outside(f, is_int)
    assert outside
    for value in outside:
        item = f"{key}[0]" if isinstance(default, tuple) else key
        with pytest.raises(PodiumError) as e:
            load_config(None, [f"{key}={value}"])
        shown_value = repr(float(value) if not is_int else int(value))
        assert str(e.value) == f"Config key {item} must be {range_text(f.metadata)}, got {shown_value}."


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=-1", "Config key train.lr must be > 0, got -1.0."),
        ("train.accum_steps=0", "Config key train.accum_steps must be >= 1, got 0."),
        ("train.batch_size=-4", "Config key train.batch_size must be >= 0, got -4."),
        ("model.img_size=-32", "Config key model.img_size[0] must be in [16, 4096], got -32."),
        ("model.img_size=288x8", "Config key model.img_size[1] must be in [16, 4096], got 8."),
        ("model.img_size=288x", "Config key model.img_size must be N (square) or HxW (height x width, e.g. 288x224), "
                                "got '288x'."),
        ("model.img_size=32x32x32", "Config key model.img_size must be N (square) or HxW (height x width, e.g. "
                                    "288x224), got '32x32x32'."),
        ("train.label_smoothing=2", "Config key train.label_smoothing must be in [0, 1), got 2.0."),
        ("train.epochs=0", "Config key train.epochs must be >= 1, got 0."),
        ("train.lr=.nan", "Config key train.lr must be a finite number, got nan."),
        ("train.lr=1e400", "Config key train.lr must be a finite number, got inf."),
    ],
)
def test_reported_bad_numbers(override: str, message: str) -> None:
    with pytest.raises(PodiumError) as e:
        load_config(None, [override])
    assert str(e.value) == message


def test_special_values_and_exponents() -> None:
    cfg = load_config(None, ["model.img_size=0", "train.batch_size=auto", "predict.threshold=-1", "train.lr=3e-4",
                             "train.num_workers=-1", "data.near_distance=16"])
    assert (cfg.model.img_size, cfg.train.batch_size, cfg.predict.threshold) == ((), 0, -1.0)
    assert cfg.train.lr == 3e-4 and cfg.data.near_distance == 16
    assert load_config(None, ["model.img_size=16"]).model.img_size == (16,)


@pytest.mark.parametrize("text, size", [("288x224", (288, 224)), ("288 x 224", (288, 224)), ("[288, 224]", (288, 224)),
                                        ("288,224", (288, 224)), ("128x128", (128,)), ("[128]", (128,)), ("", ())])
def test_rectangular_sizes_are_height_by_width(text: str, size: tuple[int, ...], tmp_path: Path) -> None:
    assert load_config(None, [f"model.img_size={text}"]).model.img_size == size
    path = tmp_path / "cfg.yaml"
    path.write_text(f"model:\n  img_size: {text or 0}\n")
    cfg = load_config(path)
    assert cfg.model.img_size == size and load_config(None, [f"model.img_size={list(size)}"]).model.img_size == size


def test_freeze_epochs_below_epochs_when_pretrained() -> None:
    with pytest.raises(PodiumError, match=r"^Config key finetune\.freeze_epochs must be < train\.epochs \(2\) with "
                                          r"pretrained weights \(model\.pretrained=auto\), got 2"):
        validate(load_config(None, ["train.epochs=2", "finetune.freeze_epochs=2"]))
    validate(load_config(None, ["train.epochs=2", "finetune.freeze_epochs=1"]))
    validate(load_config(None, ["train.epochs=1", "finetune.freeze_epochs=0"]))
    validate(load_config(None, ["train.epochs=1", "model.pretrained=none"]))  # from scratch nothing is frozen


def test_train_folds_within_folds() -> None:
    with pytest.raises(PodiumError, match=r"^Config key cv\.train_folds has folds \[3\] outside 0\.\.2 \(cv\.folds=3"):
        validate(load_config(None, ["cv.folds=3", "cv.train_folds=0,3"]))
    with pytest.raises(PodiumError, match=r"^Config key cv\.train_folds\[1\] must be >= 0, got -1\.$"):
        load_config(None, ["cv.train_folds=0,-1"])
    assert load_config(None, ["cv.folds=3", "cv.train_folds=2"]).cv.train_folds == (2,)


def test_yaml_and_overrides_are_checked_together(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  lr: -1\n  epochs: 1\nmodel:\n  head: lnear\n")
    with pytest.raises(PodiumError, match="train.lr must be > 0"):  # values at load, registry names after it
        validate(load_config(path))
    with pytest.raises(PodiumError, match="model.head: unknown head 'lnear'"):
        validate(load_config(path, ["train.lr=0.01"]))
    cfg = validate(load_config(path, ["train.lr=0.01", "model.head=linear", "finetune.freeze_epochs=0"]))
    assert (cfg.train.lr, cfg.model.head, cfg.train.epochs) == (0.01, "linear", 1)


def test_from_dict_checks_values_but_not_relations() -> None:
    """Checkpoints are read with from_dict: a number out of bounds fails, a relation between keys or a registered name
    does not (a config that trained keeps loading for inference); podium.validation checks those."""
    raw = to_dict(PodiumConfig())
    raw["train"]["epochs"], raw["finetune"]["freeze_epochs"] = 1, 1
    assert from_dict(raw).train.epochs == 1
    raw["model"]["head"] = "lnear"
    with pytest.raises(PodiumError, match="Config key model.head: unknown head 'lnear'"):
        validate(from_dict(raw))
    raw["train"]["lr"] = -1.0
    with pytest.raises(PodiumError, match="Config key train.lr must be > 0"):
        from_dict(raw)


def test_help_lists_registry_choices_and_ranges() -> None:
    lines = {line.split("=", 1)[0].strip(): line for line in help_text().splitlines() if line.startswith("  ")}
    assert "[choices: random_resized_crop, hflip, vflip, rotate90, affine, color, blur" in lines["aug.ops"]
    assert "[choices: auto, csv, folders, filenames]" in lines["data.layout"]
    losses = "auto, ce, bce, focal, cumulative, regression, bitempered, taylor, sce, gce"
    assert f"[choices: {losses}]" in lines["train.loss"]
    assert "[choices: auto, no, bf16, fp16]" in lines["train.precision"]
    assert "[range: > 0]" in lines["train.lr"] and "[range: in [0, 1)]" in lines["train.label_smoothing"]
    assert "[range: in [16, 4096]]" in lines["model.img_size"] and "HxW" in lines["model.img_size"]
    for key, f, _ in _fields():
        if f.metadata["choices"] is not None:
            assert "[choices: " in lines[key], key
        if any(b in f.metadata for b in BOUNDS):
            assert "[range: " in lines[key], key


# ------------------------------------------------------------------------------------------------ end to end (CLI)

@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("aug.ops=hfilp", ["aug.ops[0]", "'hfilp'", "Did you mean 'hflip'?"]),
        ("finetune.bn=froze", ["finetune.bn", "'froze'", "Did you mean 'frozen_eval'?"]),
        ("train.lr=-1", ["train.lr must be > 0, got -1.0"]),
        ("cv.folds=20", ["cv.folds=20", "has 16", "cv.folds=16 or fewer"]),
    ],
)
def test_cli_bad_config_stops_before_the_run_folder(bad: str, expected: list[str], tmp_path: Path) -> None:
    data = datagen.csv_single(tmp_path / "data", n_test=3)  # 48 images, 16 per class
    runs = tmp_path / "runs"
    env = {**os.environ, "PODIUM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path),
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [sys.executable, "-m", "podium", "train", str(data), *datagen.TINY, bad, f"run.root={runs}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert not runs.exists() or not any(runs.iterdir())  # no run folder and no podium.db


def test_the_weight_source_says_whether_a_freeze_applies() -> None:
    from podium.models.weights import WEIGHT_SOURCES, WeightSource, random_init

    overrides = ["train.epochs=1", "finetune.freeze_epochs=1"]
    for pretrained in (False, True):
        WEIGHT_SOURCES.register("throwaway")(WeightSource(random_init, pretrained=pretrained))
        try:
            cfg = load_config(None, [*overrides, "model.pretrained=throwaway"])
            if pretrained:
                with pytest.raises(PodiumError, match=r"with pretrained weights \(model\.pretrained=throwaway\)"):
                    validate(cfg)
            else:
                validate(cfg)  # random weights: nothing is frozen, whatever the source is called
        finally:
            WEIGHT_SOURCES.unregister("throwaway")
