import os
import pickle
import time
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import datagen
from podium.config import DataConfig, load_config
from podium.core.errors import PodiumError
from podium.data.pixels.cache import build_cache, cache_side, decoded_images, shrink, store_dir
from podium.data.pixels.images import read_image
from podium.data.training.dataset import ImageDataset, collate


def write_images(folder: Path, n: int = 6, size: int = 96, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = datagen.class_image(i % 3, rng, size)
        img = cv2.resize(img, (size + 16 * (i % 2), size))  # some not square: the aspect ratio must survive
        path = folder / f"im{i}.png"
        datagen.write_image(path, img)
        paths.append(str(path))
    return paths


def test_cache_side() -> None:
    assert cache_side(128, 1.25) == 160
    assert cache_side(224, 1.25) == 280
    assert cache_side(64, 0.5) == 64  # never below the model's input


def test_shrink_keeps_aspect_and_never_upscales() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    assert shrink(img, 50).shape == (50, 100, 3)
    assert shrink(img, 150) is img


def test_cache_matches_decoding(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs")
    images = build_cache(paths, 40, root=str(tmp_path / "cache"), threads=2)
    for i, p in enumerate(paths):
        expected = shrink(read_image(p), 40)
        got = images[i]
        assert got.shape == expected.shape and min(got.shape[:2]) == 40
        np.testing.assert_array_equal(got, expected)
    sub = images.take(np.array([4, 1]))
    np.testing.assert_array_equal(sub[0], images[4])
    np.testing.assert_array_equal(sub[1], images[1])


def test_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs")
    root = str(tmp_path / "cache")
    build_cache(paths, 40, root=root)
    pixels = store_dir(str(tmp_path / "imgs"), 40, root) / "pixels.u8"
    size = pixels.stat().st_size
    build_cache(paths, 40, root=root)  # a second run decodes nothing
    assert pixels.stat().st_size == size
    build_cache(paths[:3], 40, root=root)  # nor does a subset (another fold)
    assert pixels.stat().st_size == size

    changed = np.full((60, 60, 3), 255, np.uint8)
    cv2.imwrite(paths[2], changed)
    st = os.stat(paths[2])
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed file, whatever the clock resolution
    images = build_cache(paths, 40, root=root)
    assert pixels.stat().st_size > size  # the new version was decoded
    np.testing.assert_array_equal(images[2], shrink(read_image(paths[2]), 40))
    assert images[2].min() == 255
    other = build_cache(paths, 48, root=root)  # another cache size is another store
    assert min(other[0].shape[:2]) == 48


def test_unreadable_image_is_a_clear_error(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", n=2)
    Path(paths[1]).write_bytes(b"not an image")
    with pytest.raises(PodiumError, match="im1.png"):
        build_cache(paths, 40, root=str(tmp_path / "cache"))


def test_cache_can_be_turned_off(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", n=2)
    assert decoded_images(paths, 32, DataConfig(cache=False)) is None
    on = decoded_images(paths, 32, DataConfig(cache_dir=str(tmp_path / "cache")))
    assert on is not None and min(on[0].shape[:2]) == 40


def test_dataset_reads_cache_in_workers_and_after_pickling(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", n=4)
    images = build_cache(paths, 40, root=str(tmp_path / "cache"))
    first = images[0]  # opens the map in this process; a pickled copy must not carry it
    clone = pickle.loads(pickle.dumps(images))
    np.testing.assert_array_equal(clone[0], first)

    center = A.Compose([A.Crop(0, 0, 40, 40)])  # picklable, for the spawned worker
    ds = ImageDataset(paths, np.arange(4), center, images)
    plain = ImageDataset(paths, np.arange(4), center)
    loader = DataLoader(ds, batch_size=2, num_workers=1, multiprocessing_context="spawn", collate_fn=collate)
    xs = torch.cat([x for x, _, _ in loader])
    assert xs.dtype == torch.uint8 and xs.shape == (4, 3, 40, 40)
    expected = torch.stack([torch.from_numpy(shrink(read_image(p), 40)[:40, :40].transpose(2, 0, 1).copy())
                            for p in paths])
    assert torch.equal(xs, expected)
    assert plain[0][0].shape == (3, 40, 40)


def folder_competition(root: Path, per_class: int = 24, size: int = 96) -> Path:
    rng = np.random.default_rng(1)
    for c, name in enumerate(("red", "green", "blue")):
        for i in range(per_class):
            datagen.write_image(root / "train" / name / f"{name}{i}.png", datagen.class_image(c, rng, size))
    return root


def test_training_results_unchanged_by_cache(tmp_path: Path, tiny: tuple[str, ...],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.pipeline import train

    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))
    data = folder_competition(tmp_path / "data")
    scores, preps = {}, {}
    for cache in (True, False):
        cfg = load_config(None, [*tiny, "train.epochs=6", "train.lr=0.01", "cv.train_folds=[0]", f"data.cache={cache}",
                                 f"run.name=cache-{cache}"])
        t0 = time.perf_counter()
        run = train(data, cfg)
        print(f"cache={cache}: {time.perf_counter() - t0:.1f} s, cv {run.metrics['cv_score']:.3f}")
        scores[cache] = run.metrics["cv_score"]
        preps[cache] = run.load_best(0).preprocessing
    assert list((tmp_path / "cache" / "images").iterdir()), "the cached run used the cache"
    assert preps[True] == preps[False]
    assert scores[False] > 0.8, "the task is learnable in 6 epochs"
    assert abs(scores[True] - scores[False]) <= 0.15


def test_batches_are_fetched_whole_in_channels_last(tmp_path: Path) -> None:
    from podium.engine.accel import make_loader

    paths = write_images(tmp_path / "imgs", n=5)
    crop = A.Compose([A.Crop(0, 0, 40, 40)])
    ds = ImageDataset(paths, np.arange(5) * 2, crop, build_cache(paths, 40, root=str(tmp_path / "cache")))
    x, y, idx = ds.__getitems__([3, 0, 4])
    assert x.shape == (3, 3, 40, 40) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, torch.stack([ds[i][0] for i in (3, 0, 4)]))
    assert y.tolist() == [6, 0, 8] and idx.tolist() == [3, 0, 4]
    for workers in (0, 1):
        batches = list(make_loader(ds, 2, workers, "cpu"))
        assert [b[2].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
        assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([ds[i][0] for i in range(5)]))
    unlabeled = ImageDataset(paths, None, crop)
    assert unlabeled.__getitems__([1, 2])[1].tolist() == [-1, -1]
