"""The run configuration: one frozen dataclass tree, filled from YAML first and dotted CLI overrides second.

This module says what the options are (one dataclass per section, each field an ``opt`` with its default, help and
accepted values) and loads the tree; the machinery (reading YAML and overrides, building dataclasses from dicts,
checking values) lives in podium.config_checks. Unknown keys, wrong types and numbers out of range are one-line
errors that name the key, raised when the config is loaded (before any run folder exists). Registry names and
relations between keys are checked right after loading by podium.validation, which every entry point calls. This
module and its checks import nothing above them. The resolved tree is saved in every run folder and in every
checkpoint, so inference rebuilds exactly what was trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podium.config_checks import apply_overrides, opt, parse_override, parse_size, read_config_file, to_dict
from podium.config_checks import from_dict as build_tree

# opt, parse_override and to_dict live with the machinery in podium.config_checks; they stay importable from here
__all__ = ["AugConfig", "CVConfig", "DataConfig", "FinetuneConfig", "ModelConfig", "PodiumConfig", "PredictConfig",
           "RunConfig", "TrainConfig", "config_hash", "dump_yaml", "from_dict", "load_config", "merge", "opt",
           "parse_override", "shown_precision", "to_dict"]


@dataclass(frozen=True)
class DataConfig:
    """Where the images and labels are and how to read them."""

    layout: str = opt("auto", "Dataset layout; auto: detected from the files.", reserved=("auto",))
    task: str = opt("auto", "Task; auto: guessed from the labels; integer grades 0..K-1 (K >= 3) in a column named "
                    "like a grade (diagnosis, level, kl_grade) are ordinal, data.task=multiclass says they are not.",
                    reserved=("auto",))
    train_csv: str = opt("train.csv", "Labels CSV, relative to the data folder (csv layout); without train.csv, "
                         "the CSV whose ids name the training images (trainLabels.csv, ...).")
    label_from: str = opt("auto", "Where the labels are; name: in the training images' file names "
                          "(data.label_pattern); auto: a labels CSV, class folders, else file names that share a few "
                          "prefixes.",
                          choices=("auto", "name"))
    label_pattern: str = opt("", "Regular expression with one capture group, the label, searched in each training "
                             "image's file name (fastai's from_name_re); empty: the name up to its first '.' or '_'.")
    id_col: str = opt("", "Id column of the CSVs; empty: guessed (image, image_id, id, ...).")
    label_cols: tuple[str, ...] = opt((), "Label column(s); empty: every column but the id and ignored ones.")
    ignore_cols: tuple[str, ...] = opt((), "CSV columns that are neither id nor label (metadata).")
    label_sep: str = opt(" ", "Separator of several labels in one cell (multilabel CSVs).")
    csv_sep: str = opt("auto", "Delimiter of train.csv, test.csv and the sample submission; auto: sniffed from their "
                       "first lines.", reserved=("auto",))
    csv_encoding: str = opt("auto", "Text encoding of the CSVs; auto: UTF-8 (with or without a byte-order mark) or "
                            "UTF-16; a file in another encoding stops and names this key.", reserved=("auto",))
    class_order: tuple[str, ...] = opt((), "The classes in this order (required for ordinal grades that are not "
                                       "numbers); empty: numeric labels by value, others alphabetically, 0/1 "
                                       "columns as the CSV has them.")
    image_dir: str = opt("", "Folder of the training images; empty: train_images/, images/, train/ or the root.")
    test_dir: str = opt("", "Folder of the test images; empty: test_images/, test/, images/ or the root.")
    sample_submission: str = opt("sample_submission.csv", "Sample submission CSV, relative to the data folder.")
    test_csv: str = opt("test.csv", "Test CSV listing test ids when there is no sample submission.")
    check_images: bool = opt(True, "Check every image once before training (decode, size, hashes, duplicates); "
                                   "stop on unreadable ones. Results are cached by file size and mtime.")
    skip_bad: bool = opt(False, "Drop unreadable training images (listed in the report) instead of stopping.")
    near_distance: int = opt(3, "Near duplicates: largest pHash Hamming distance (of 64 bits); 0: identical pHash "
                                "only.", ge=0, le=16)
    conflicts: str = opt("keep", "What happens to duplicate clusters whose labels disagree; keep: all their rows, in "
                                 "one fold.")
    extra: tuple[str, ...] = opt((), "Other labelled folders (any layout) added to the training rows, train-only: "
                                 "never validated or scored; their duplicates of competition images are dropped.")
    extra_label_map: tuple[str, ...] = opt((), "Renames for data.extra labels, old=new (e.g. cbb=bacterial_blight).")
    soft_labels: str = opt("", "Run or ensemble folder whose out-of-fold probabilities soften the training targets "
                           "(same data and folds; joined by id): (1 - soft_alpha) x truth + soft_alpha x OOF.")
    soft_alpha: float = opt(0.3, "Weight of the data.soft_labels source's OOF probabilities in the targets.", gt=0,
                            le=1)
    suspects: str = opt("", "Run folder whose suspect labels (its suspects.csv: labels its own OOF predictions "
                        "contradict; same data and folds) data.suspect_action acts on in training; validation keeps "
                        "the given labels.")
    suspect_action: str = opt("drop", "What happens to data.suspects' suspect labels in training: drop, relabel (the "
                              "suggested label), soft (quality x label + (1 - quality) x OOF), weight (drawn in "
                              "proportion to the quality score).")
    pseudo: str = opt("", "Run or ensemble folder whose test predictions add the test images as train-only rows "
                      "(never validated; duplicates of training images left out).")
    pseudo_threshold: float = opt(0.0, "data.pseudo: 0 keeps the source's probabilities as soft targets; above 0, "
                                  "hard labels for rows the source is at least this sure of, the others dropped.",
                                  ge=0, le=1)
    pseudo_share: str = opt("all", "data.pseudo rows train every fold's model (all), or each one fold's (fold: split "
                            "across the folds, seeded by id).", choices=("all", "fold"))
    pseudo_folds: str = opt("matched", "data.pseudo targets of fold k's rows: matched: the source's fold-k model's "
                            "(it never saw fold k: an honest CV; needs the same folds and its per-fold predictions); "
                            "averaged: its fold average (flatters the CV).", choices=("matched", "averaged"))
    pseudo_images: str = opt("", "data.pseudo: a folder of unlabelled images to pseudo-label instead of the test set "
                             "(the source must have predicted it: podium predict SOURCE --images FOLDER).")
    group_col: str = opt("", "CSV column of groups (e.g. patient_id) kept in one fold together with duplicates.")
    cache: bool = opt(True, "Decode each image once into a memory-mapped uint8 cache reused by epochs, folds and runs.")
    cache_scale: float = opt(1.25, "Cached short side as a multiple of the model's input size (never upscaled).", ge=1)
    cache_dir: str = opt("", "Root of the decoded-image cache; empty: $PODIUM_CACHE or ~/.cache/podium.")
    cache_format: str = opt("auto", "How the cache stores pixels: raw (uint8, no decode cost), jpeg (quality 95 at "
                            "the cache size, ~1/9 of the disk, ~2.5x the loader's CPU); auto: raw while a store's "
                            "raw size stays under 16 GiB, jpeg above.", reserved=("auto",))
    preprocess: tuple[str, ...] = opt((), "Image preprocessing ops applied in order to every decoded image before "
                                      "resizing and caching, in training and prediction alike (saved in each "
                                      "checkpoint), e.g. crop_black,ben_graham for retinas.")
    ben_graham_sigma: float = opt(0.04, "ben_graham: Gaussian blur sigma as a fraction of the image's short side "
                                  "(APTOS notebooks: sigmaX=10 at 256 px).", gt=0, le=1)
    black_tolerance: int = opt(10, "crop_black: pixels at or below this gray level (0-255) count as border.", ge=0,
                               le=254)
    clahe_clip: float = opt(2.0, "clahe: contrast limit of the histogram equalisation (8x8 tiles).", gt=0, le=40)


@dataclass(frozen=True)
class ModelConfig:
    """The network and the preprocessing it owns."""

    name: str = opt("tf_efficientnet_lite0", "Any timm architecture name (see `podium models`).")
    pretrained: str = opt("auto", "Where the pretrained weights come from; auto: hub, else cached, else packaged "
                          "(never random); none: train from scratch.")
    weights_path: str = opt("", "Weights file or folder for pretrained=file.")
    head: str = opt("linear", "Classifier head on the backbone's features.")
    img_size: tuple[int, ...] = opt((), "Input size in pixels: N for N x N, or HxW (height x width, e.g. 288x224, "
                                    "or [288, 224]) for rectangular inputs; empty or 0: the model's pretrained_cfg "
                                    "input size.", parse=parse_size, ge=16, le=4096)
    resize: str = opt("squash", "How an image is brought to img_size at evaluation.")
    pad_fill: int = opt(-1, "resize=pad: gray level (0-255) of the padding; -1: the model's mean colour (zero after "
                        "normalisation).", also=(-1,), ge=0, le=255)
    drop_rate: float = opt(0.0, "Dropout before the classifier.", ge=0, lt=1)
    drop_path_rate: float = opt(0.0, "Stochastic depth rate (models that support it).", ge=0, lt=1)


@dataclass(frozen=True)
class FinetuneConfig:
    """How pretrained weights are fine-tuned: head-only warm-up, discriminative learning rates, BatchNorm mode."""

    freeze_epochs: int = opt(1, "Head-only epochs with the backbone frozen (part of train.epochs, so fewer than "
                             "it with pretrained weights), then all layers.", ge=0)
    backbone_lr: float = opt(0.5, "Backbone learning rate as a fraction of train.lr (discriminative learning rates).",
                             gt=0, le=1)
    layer_decay: float = opt(0.0, "timm's layer-wise LR decay (e.g. 0.75) instead of backbone_lr; 0: off.", ge=0, lt=1)
    bn: str = opt("train", "BatchNorm mode of the backbone; frozen_eval: eval while the backbone is frozen.")


@dataclass(frozen=True)
class AugConfig:
    """Training augmentations, each a registered op applied in order (see podium.data.training.transforms)."""

    ops: tuple[str, ...] = opt(
        ("random_resized_crop", "hflip", "vflip", "affine", "color"), "Augmentation ops applied in training.",
    )
    scale_min: float = opt(0.6, "Smallest area fraction kept by random_resized_crop.", gt=0, le=1)
    presize: float = opt(0.0, "Training honours model.resize as fastai's presizing does: each image is first resized "
                         "with model.resize (squash, crop, pad) to presize x the input size, then random_resized_crop "
                         "crops within it; 0: off (random_resized_crop crops the raw image, so model.resize acts in "
                         "evaluation only).", ge=1, le=4, also=(0.0,))
    rotate: float = opt(15.0, "Largest rotation in degrees for affine.", ge=0, le=180)
    strength: float = opt(0.2, "Brightness/contrast/saturation jitter for color.", ge=0, le=1)
    pipeline: str = opt("", "An albumentations pipeline saved with A.save (YAML or JSON) used for training instead "
                        "of aug.ops (the model's resize is appended; no Normalize or ToTensorV2 in it).")
    gridmask_ratio: float = opt(0.5, "gridmask: fraction of each grid cell that is dropped.", gt=0, lt=1)
    batch: tuple[str, ...] = opt((), "Batch augmentations mixing pairs of images and their labels (timm's Mixup); "
                                 "with several, each batch uses one, switched at random.")
    mixup_alpha: float = opt(0.4, "mixup: Beta(alpha, alpha) distribution of the mixing weight.", gt=0)
    cutmix_alpha: float = opt(1.0, "cutmix: Beta(alpha, alpha) distribution of the pasted area.", gt=0)
    batch_prob: float = opt(1.0, "Probability that a batch is mixed at all.", gt=0, le=1)
    switch_prob: float = opt(0.5, "With mixup and cutmix both on: probability of cutmix for a mixed batch.", ge=0,
                             le=1)
    batch_off_epochs: int = opt(0, "Train the last N epochs without batch augmentation (clean labels at the end).",
                                ge=0)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop."""

    epochs: int = opt(10, "Epochs per fold.", ge=1)
    patience: int = opt(0, "Early stopping: a fold ends after this many epochs without a gain in cv.metric on its "
                        "validation rows, keeping its best epoch; 0: every fold trains train.epochs.", ge=0)
    batch_size: int = opt(32, "Images per optimiser step per device (before accumulation); auto (stored as 0): the "
                          "largest that fits on the GPU, with accum_steps set to keep train.effective_batch.", ge=0,
                          auto=0)
    effective_batch: int = opt(32, "Images per optimiser update that batch_size=auto keeps (via accum_steps).", ge=1)
    accum_steps: int = opt(1, "Gradient accumulation steps; effective batch = batch_size x accum_steps x devices.",
                           ge=1)
    optimizer: str = opt("adamw", "Optimiser, through timm's create_optimizer_v2.")
    lr: float = opt(1e-3, "Peak learning rate.", gt=0)
    weight_decay: float = opt(0.05, "Weight decay (not applied to norms and biases).", ge=0)
    schedule: str = opt("cosine", "Learning-rate schedule over optimiser updates, after the warmup.")
    warmup_epochs: float = opt(1.0, "Linear warmup length in epochs, then the schedule, stepped per update.", ge=0)
    min_lr_ratio: float = opt(0.01, "Final learning rate as a fraction of lr.", ge=0, le=1)
    loss: str = opt("auto", "Loss; auto: the task's own (cross-entropy for binary and multiclass, binary "
                    "cross-entropy for multilabel, podium.tasks.task.DEFAULT_ORDINAL_LOSS for ordinal). cumulative "
                    "and regression code ordered grades (data.task=ordinal).",
                    reserved=("auto",))
    label_smoothing: float = opt(0.1, "Label smoothing for ce, bce, focal and cumulative.", ge=0, lt=1)
    focal_gamma: float = opt(2.0, "Focusing parameter of the focal loss (0: plain cross-entropy).", ge=0)
    sampler: str = opt("shuffle", "How training batches draw images: every image once per epoch (shuffle), or with "
                       "replacement by class frequency (single-label tasks).")
    class_weights: str = opt("none", "Class weighting of the loss; none: every class counts the same.")
    clip_grad: float = opt(1.0, "Gradient norm clipping; 0 disables.", ge=0)
    precision: str = opt("auto", "Mixed precision; auto: bf16 (or fp16) on CUDA, fp32 elsewhere; no: fp32; bf16 also "
                         "on CPU (2.2x for resnet18, slower for EfficientNet-Lite).",
                         choices=("auto", "no", "bf16", "fp16"))
    ema: bool = opt(True, "Keep an exponential moving average of the weights; it is evaluated and saved.")
    ema_decay: float = opt(0.998, "EMA decay (with timm's warmup so short runs still average sensibly).", gt=0, lt=1)
    channels_last: bool = opt(True, "Use channels_last memory format.")
    compile: bool = opt(False, "torch.compile the model for training (slow to start; pays off on long runs).")
    device: str = opt("auto", "Device; auto: cuda, else mps, else cpu.", choices=("auto", "cpu", "cuda", "mps"))
    num_workers: int = opt(-1, "DataLoader workers; -1: chosen from the CPU count.", ge=-1)
    threads: int = opt(0, "Torch CPU threads; 0: torch's default.", ge=0)
    cpu_keep_memory: bool = opt(True, "On CPU, have glibc's malloc keep freed memory in the process (as jemalloc "
                                "does) instead of page-faulting every step's activations back in: ~10% faster "
                                "steps, higher resident memory.")
    seed: int = opt(42, "Training seed (fold k uses seed + k).", ge=0, le=2**31 - 1)
    teacher: str = opt("", "Run or ensemble folder to distill from: its OOF probabilities on the training rows (same "
                       "folds), and its test predictions on data.pseudo rows.")
    distill_alpha: float = opt(0.5, "Distillation: weight of the teacher term (the truth's is 1 - distill_alpha).",
                               gt=0, le=1)
    distill_temperature: float = opt(2.0, "Distillation temperature T (the teacher term is scaled by T^2).", gt=0,
                                     le=20)


def shown_precision(value: str) -> str:
    """A precision as podium shows it to people (console, train.log, report): ``fp32`` for ``no``, the word that
    ``train.precision`` and Accelerate (and so run.json) use for no mixed precision; ``bf16`` and ``fp16`` as they
    are."""
    return "fp32" if value == "no" else value


@dataclass(frozen=True)
class CVConfig:
    """Cross-validation folds."""

    folds: int = opt(5, "Number of folds K (at most the images of the largest class, and of groups).", ge=2)
    seed: int = opt(42, "Seed of the fold split.", ge=0, le=2**31 - 1)
    train_folds: tuple[int, ...] = opt((), "Folds to train (0-based, below cv.folds); empty: all.", ge=0)
    folds_file: str = opt("", "Reuse the folds of this folds.csv (id,fold) instead of computing them.")
    metric: str = opt("auto", "The competition's metric: picks each fold's best epoch, is what the fitted decisions "
                      "(thresholds, cut points) maximise, ranks sweeps and searches, weights blends and is cv_score "
                      "(those decisions cross-fitted: fitted on the other folds, scored on each). "
                      "A registered name, or module:function[:max|min] (a function (y_true, y_prob) -> float); auto: "
                      "the one the sample submission implies (one probability column per class: mean_auc; a binary "
                      "probability column holding fractions such as 0.5: log_loss; space-separated labels: "
                      "f1_samples; a binary task's label column: accuracy), else the task's own (accuracy, roc_auc, "
                      "qwk, mean_auc).",
                      reserved=("auto",), user=True)


@dataclass(frozen=True)
class PredictConfig:
    """Inference: TTA, thresholds and submission."""

    tta: tuple[str, ...] = opt(("identity", "hflip"), "TTA views (or named sets of views) averaged on logits; "
                               "identity alone: no TTA.", min_items=1)
    scales: tuple[float, ...] = opt((1.0,), "Multi-scale TTA: every view also at these multiples of the input size.",
                                    gt=0, le=4, min_items=1)
    threshold: float = opt(-1.0, "Multilabel decision threshold for every class; negative: fitted on the OOF "
                           "predictions as threshold_mode says.", le=1)
    threshold_mode: str = opt("global", "How multilabel thresholds are fitted on the OOF predictions: one for all "
                              "classes or one per class.")
    binary_threshold: str = opt("argmax", "Binary label submissions: the rule fitting a threshold on the positive "
                                "class on the OOF predictions; argmax: none (0.5).")
    batch_size: int = opt(0, "Inference batch size; 0: twice train.batch_size.", ge=0)


@dataclass(frozen=True)
class RunConfig:
    """Where the run folder goes, and what else records the run."""

    root: str = opt("runs", "Runs root: run folders and the experiment log (podium.db) live here.")
    name: str = opt("", "Run name; empty: <data folder>-<model>.")
    report: bool = opt(True, "Write report.html into the run folder when training ends (`podium report RUN_DIR` "
                       "writes it any time).")
    trackers: tuple[str, ...] = opt((), "Experiment trackers (the trackers extra: pip install 'podium[trackers]', or "
                                    "pip install -e '.[trackers]' in a checkout): training loss and "
                                    "learning rate, and each epoch's validation metrics, one tracker run per fold, "
                                    "stored in the runs root (tensorboard/, mlflow.db).")
    mlflow_uri: str = opt("", "MLflow tracking URI for run.trackers=mlflow (a server: http://host:5000); empty: "
                          "sqlite:///<run.root>/mlflow.db.")
    log_every: int = opt(10, "Trackers: log the training loss (the mean since the last point) and learning rate "
                         "every N optimiser updates, and at the end of each epoch.", ge=1)


@dataclass(frozen=True)
class PodiumConfig:
    """A whole run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    run: RunConfig = field(default_factory=RunConfig)


# --------------------------------------------------------------------------------------------------------- building


def from_dict(raw: dict[str, Any], cls: type = PodiumConfig, prefix: str = "") -> Any:
    """Build a config dataclass (the whole tree by default) from a nested dict, rejecting unknown keys, values of the
    wrong type and numbers out of range (each field's declared rules, see podium.config_checks).

    Registry names and relations between keys are checked by ``podium.validation.validate`` after loading: a
    checkpoint's config is read with this function, and a config that trained once keeps loading for inference.
    """
    return build_tree(raw, cls, prefix)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> PodiumConfig:
    """Read a YAML config (optional), apply ``section.key=value`` overrides and return the frozen tree.

    The YAML and the overrides are checked together, once: an override may fix a value of the file.
    """
    raw = read_config_file(path) if path else {}
    return from_dict(apply_overrides(raw, overrides, PodiumConfig))


def merge(cfg: PodiumConfig, overrides: list[str] | tuple[str, ...]) -> PodiumConfig:
    """Apply dotted overrides to a config, returning a new frozen config (checked like ``load_config``'s)."""
    return from_dict(apply_overrides(to_dict(cfg), overrides, PodiumConfig))


def dump_yaml(cfg: PodiumConfig) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_hash(cfg: PodiumConfig) -> str:
    """A short, stable hash of the settings that change the result (the run's name and root excluded)."""
    d = to_dict(cfg)
    d.pop("run", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
