from __future__ import annotations

import numpy as np
import pytest

from podium.core.errors import PodiumError
from podium.data.pixels.duplicates import find_clusters, near_pairs


def _random_hashes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(
        np.uint64)


def _flip(h: np.uint64, bits: np.ndarray) -> np.uint64:
    for b in bits:
        h ^= np.uint64(1) << np.uint64(int(b))
    return h


def _planted(n: int, n_near: int, max_flips: int, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """n random hashes plus n_near copies of random ones with 1..max_flips bits flipped; the planted pairs."""
    rng = np.random.default_rng(seed)
    base = _random_hashes(n, seed)
    sources = rng.choice(n, n_near, replace=False)
    extra = [_flip(base[s], rng.choice(64, rng.integers(1, max_flips + 1), replace=False)) for s in sources]
    hashes = np.concatenate([base, np.array(extra, dtype=np.uint64)])
    return hashes, {(int(s), n + k) for k, s in enumerate(sources)}


def _pairs(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))


@pytest.mark.parametrize("d", [1, 3, 6, 10])
def test_near_pairs_equal_brute_force(d: int) -> None:
    hashes, _ = _planted(1500, 150, d + 2, seed=d)
    x = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    i, j = np.triu_indices(len(hashes), 1)
    expected = {(int(a), int(b)) for a, b in zip(i, j) if x[a, b] <= d}
    assert expected  # the planted copies include pairs within d bits
    assert _pairs(*near_pairs(hashes, d)) == expected


def test_near_pairs_scale_to_20000_hashes() -> None:
    # 20,000 random pHashes plus 300 planted near copies; a quadratic Python loop would take minutes here
    hashes, planted = _planted(20_000, 300, 6, seed=1)
    found = _pairs(*near_pairs(hashes, 6))
    assert planted <= found
    # every pair reported is really within 6 bits
    a, b = np.array(sorted(found)).T
    assert (np.bitwise_count(hashes[a] ^ hashes[b]) <= 6).all()


def test_find_clusters_exact_near_and_identical_hash_floods() -> None:
    # 0,1: same bytes; 2,3: same pHash (different bytes); 4,5: 3 bits apart; 6: alone; 7..2006: one blank image
    base = _random_hashes(3, seed=3)
    near = _flip(base[2], np.array([1, 7, 40]))
    phash = np.array([base[0], base[0], base[1], base[1], base[2], near, ~base[0]] + [np.uint64(0)] * 2000,
                     dtype=np.uint64)
    sha1 = ["a", "a", "b", "c", "d", "e", "f"] + ["blank"] * 2000
    cluster, exact = find_clusters(sha1, phash, 4)
    assert cluster[0] == cluster[1] and exact[0]
    assert cluster[2] == cluster[3] and not exact[2]
    assert cluster[4] == cluster[5] and not exact[4]
    assert len({cluster[0], cluster[2], cluster[4], cluster[6], cluster[7]}) == 5
    assert (cluster[7:] == cluster[7]).all() and exact[7]
    cluster0, _ = find_clusters(sha1, phash, 0)  # exact pHash matches still merge, 3 bits apart do not
    assert cluster0[4] != cluster0[5] and cluster0[2] == cluster0[3]


def test_distance_out_of_range_is_a_user_error() -> None:
    with pytest.raises(PodiumError, match="near_distance"):
        near_pairs(_random_hashes(10, 0), 40)


def test_near_pairs_match_brute_force_when_many_hashes_share_a_band() -> None:
    """2,000 hashes with the same low 32 bits (a crowd of similar scans): every band run is huge, the pairs are still
    exactly the brute-force ones (candidates are verified per offset step, never all held at once)."""
    rng = np.random.default_rng(3)
    high = rng.integers(0, 2**31, 2000).astype(np.uint64) << np.uint64(32)
    flips = np.uint64(1) << rng.integers(32, 64, 2000).astype(np.uint64)
    hashes = np.unique(np.concatenate([high, high[:300] ^ flips[:300]]) | np.uint64(0xABCD1234))
    a, b = near_pairs(hashes, 2)
    found = {(min(i, j), max(i, j)) for i, j in zip(a.tolist(), b.tolist())}
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    i, j = np.nonzero(np.triu(dist <= 2, 1))
    assert found == set(zip(i.tolist(), j.tolist())) and len(found) >= 300
