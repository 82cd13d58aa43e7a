"""The torch Dataset: image -> uint8 CHW tensor, target, row index (so predictions are keyed by row).

The DataLoader fetches whole batches through ``__getitems__``: the augmented HWC images are stacked straight into
one NHWC buffer (in shared memory inside a worker), whose NCHW view is already channels_last, which is the layout the
model wants; ``collate`` passes such batches through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate, get_worker_info

from podium.config import AugConfig, DataConfig
from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.pixels.cache import DecodedImages, decoded_images
from podium.data.pixels.image_ops import ImageOps, ops_of
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.transforms import create_transform, seed_transform
from podium.tasks.task import Task

# A sampling policy maps (task, training targets, class count) to per-row sampling weights, or None to visit every
# row once per epoch.
SamplingWeights = Callable[[Task, np.ndarray, int], "np.ndarray | None"]
SAMPLERS: Registry[SamplingWeights] = Registry("sampler")


@SAMPLERS.register("shuffle")
def shuffle(task: Task, targets: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Every image once per epoch, in a new order each epoch."""
    return None


def _class_weights(task: Task, targets: np.ndarray, num_classes: int, power: float) -> np.ndarray:
    if np.asarray(targets).ndim != 1:
        raise PodiumError("train.sampler balances classes of single-label tasks; this task has several labels per "
                          "image. Use train.sampler=shuffle (and train.class_weights=balanced for rare labels).")
    counts = task.counts(targets, num_classes).clip(min=1).astype(np.float64)
    return counts[np.asarray(targets, dtype=np.int64)] ** -power


@SAMPLERS.register("balanced")
def balanced(task: Task, targets: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Every class equally often (weights 1 / class count, with replacement): rare grades are seen many times."""
    return _class_weights(task, targets, num_classes, 1.0)


@SAMPLERS.register("sqrt")
def sqrt(task: Task, targets: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Halfway to balanced (weights 1 / sqrt(class count)): rare classes more often, common ones still dominant."""
    return _class_weights(task, targets, num_classes, 0.5)


class ImageDataset(Dataset):
    """Images at ``paths`` with optional ``targets``, passed through ``transform`` (an albumentations Compose).

    With ``images`` (the decoded-image cache for the same rows) pixels come from the cache instead of the files;
    without, each file is decoded and passed through the image ops ``ops`` (the ones the cache applied).
    A DataLoader over it needs ``collate_fn=collate`` (``make_loader`` sets it).

    With ``seed``, every sample's augmentation is drawn from its own seed (seed, epoch, row), so a run is
    reproducible whatever the number of workers, and a resumed epoch sees the same augmented images. The epoch
    reaches the workers inside the sampled key (``key = epoch * len + row``, see EpochShuffleSampler), because
    persistent workers never see attributes set on the main process's copy of the dataset.
    """

    def __init__(self, paths: Sequence[str], targets: np.ndarray | None, transform: Callable,
                 images: DecodedImages | None = None, seed: int | None = None, ops: ImageOps | None = None) -> None:
        self.paths = list(paths)
        self.ops = ops or ImageOps()
        self.targets = targets
        self.transform = transform
        self.images = images
        self.seed = seed
        if images is not None and len(images) != len(self.paths):
            raise ValueError(f"{len(images)} cached images for {len(self.paths)} paths")

    def image(self, i: int) -> np.ndarray:
        """The decoded HxWx3 uint8 RGB image of row ``i``."""
        return self.images[i] if self.images is not None else self.ops.read(self.paths[i])

    def __len__(self) -> int:
        return len(self.paths)

    def augmented(self, key: int) -> tuple[int, np.ndarray]:
        """Row and transformed HxWx3 uint8 image for a sampled ``key`` (a row index, or epoch * len + row)."""
        epoch, row = divmod(key, len(self.paths))
        if self.seed is not None and isinstance(self.transform, A.Compose):
            seed_transform(self.transform, (self.seed * 1_000_003 + epoch) * 1_000_003 + row & 0xFFFFFFFF)
        return row, self.transform(image=self.image(row))["image"]

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i, img = self.augmented(key)
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        y = torch.as_tensor(self.targets[i]) if self.targets is not None else torch.tensor(-1)
        return x, y, i

    def __getitems__(self, keys: list[int]) -> Batch:
        """The batch of sampled ``keys``: (uint8 N,3,H,W in channels_last memory, targets, row indices)."""
        rows_imgs = [self.augmented(k) for k in keys]
        indices = [r for r, _ in rows_imgs]
        imgs = [img for _, img in rows_imgs]
        out = torch.empty((len(imgs), *imgs[0].shape), dtype=torch.uint8)
        if get_worker_info() is not None:
            out.share_memory_()  # sent to the main process without another copy
        np.stack(imgs, out=out.numpy())
        y = torch.as_tensor(self.targets[indices]) if self.targets is not None else torch.full((len(imgs),), -1)
        return Batch((out.permute(0, 3, 1, 2), y, torch.as_tensor(indices)))


class Batch(tuple):
    """A batch that a dataset assembled itself (see ``ImageDataset.__getitems__``)."""


def collate(data: Batch | list) -> tuple | list:
    """The DataLoader's collate function: batches assembled by the dataset pass through, lists of items are stacked."""
    return tuple(data) if isinstance(data, Batch) else default_collate(data)


class EpochShuffleSampler(Sampler[int]):
    """A sampler whose draw depends only on (seed, epoch), so a resumed run sees the same batches: a permutation of
    the rows, or with ``weights`` n rows drawn with replacement in proportion to them (torch's weighted sampling).

    It yields ``epoch * n + row``: the dataset recovers the row and seeds that sample's augmentation with the epoch.
    """

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def set_epoch(self, epoch: int) -> None:
        """Choose the draw of ``epoch``."""
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            rows = torch.randperm(self.n, generator=g)
        else:
            rows = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        return iter((rows + self.epoch * self.n).tolist())

    def __len__(self) -> int:
        return self.n


def evaluation_dataset(paths: Sequence[str], prep: Preprocessing, targets: np.ndarray | None = None,
                       data: DataConfig | None = None, images: DecodedImages | None = None) -> ImageDataset:
    """The one evaluation dataset (validation, OOF, test prediction, ensembles, reports): the image ops and the
    evaluation resize that ``prep`` (a checkpoint's own) names, over the decoded-image cache of ``images`` or, with
    ``data``, the cache ``data.cache`` says (none: decoded from the files)."""
    ops = ops_of(prep)
    if images is None and data is not None:
        images = decoded_images(paths, prep.hw, data, ops)
    return ImageDataset(paths, targets, create_transform(prep), images, ops=ops)


def training_dataset(paths: Sequence[str], targets: np.ndarray | None, prep: Preprocessing, aug: AugConfig,
                     seed: int, images: DecodedImages | None = None) -> ImageDataset:
    """The training dataset: ``aug``'s augmentations after the image ops of ``prep``, seeded per (seed, epoch, row)."""
    return ImageDataset(paths, targets, create_transform(prep, aug, train=True), images, seed=seed, ops=ops_of(prep))
