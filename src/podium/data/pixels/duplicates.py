"""Duplicate clusters: byte-identical files (same SHA-1) and near-identical images (pHash within a Hamming distance).

Near pairs are found without comparing all pairs. By the pigeonhole principle, two 64-bit hashes that differ in at
most ``d`` bits agree exactly on at least one of ``d + 1`` disjoint bit bands, so only hashes sharing a band value are
candidates; candidates are generated and verified with vectorised numpy (sort by band, pair within equal runs,
XOR + popcount), one offset within the runs at a time, so memory stays O(n) even when thousands of hashes share a band
(``bench/large_data.py``: 100k hashes in about a second and ~10 MB). Identical hashes are merged first, so a folder
of thousands of identical blank images costs nothing. Pairs become clusters through connected components (union-find).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from podium.core.errors import PodiumError

MAX_DISTANCE = 16  # beyond this pHash matches unrelated images, and each band is too short to filter anything


def _equal_runs(keys: np.ndarray, hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j), i < j in sorted order, of positions whose ``keys`` are equal and whose ``hashes`` are within
    ``max_distance`` bits; as original indices. Candidates are verified as they are generated, one offset at a time,
    so memory stays O(n) however large a run of equal keys is (thousands of similar scans sharing a band)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    n = len(k)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, n])
    remaining = np.repeat(starts + sizes, sizes) - np.arange(n) - 1  # partners after each position in its run
    left, right = [], []
    pos = np.flatnonzero(remaining > 0)
    offset = 1
    while len(pos):  # one vectorised step per offset; the active set shrinks to the larger runs
        a, b = order[pos], order[pos + offset]
        close = _popcount(hashes[a] ^ hashes[b]) <= max_distance
        left.append(a[close])
        right.append(b[close])
        offset += 1
        pos = pos[remaining[pos] >= offset]
    if not left:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(left), np.concatenate(right)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int64)


def near_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of distinct 64-bit hashes within ``max_distance`` bits (each pair may repeat)."""
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise PodiumError(f"data.near_distance must be between 0 and {MAX_DISTANCE} bits; got {max_distance}.")
    hashes = np.asarray(hashes, dtype=np.uint64)
    if max_distance == 0 or len(hashes) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    bands = max_distance + 1
    edges = np.linspace(0, 64, bands + 1).round().astype(int)
    left, right = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        keys = (hashes >> np.uint64(lo)) & mask
        a, b = _equal_runs(keys, hashes, max_distance)
        left.append(a)
        right.append(b)
    return np.concatenate(left), np.concatenate(right)


def cluster_labels(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` items given undirected pairs (union-find over the pairs)."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def find_clusters(sha1: list[str], phash: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster id of each image (its own id when it has no duplicate) and whether its cluster is byte-identical only.

    Images with the same SHA-1 or the same pHash are merged directly; distinct pHashes within ``max_distance`` bits
    are merged through ``near_pairs``. Returns ``(cluster, exact)``: ``exact[i]`` is True when every member of i's
    cluster has the same bytes.
    """
    n = len(sha1)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    _, by_sha = np.unique(np.asarray(sha1, dtype=object).astype(str), return_inverse=True)
    uniq, by_hash = np.unique(np.asarray(phash, dtype=np.uint64), return_inverse=True)
    a, b = near_pairs(uniq, max_distance)
    # nodes: n images, then one node per distinct SHA-1 and one per distinct pHash; images link to both
    sha_node = n + by_sha
    hash_node = n + by_sha.max() + 1 + by_hash
    m = int(hash_node.max()) + 1
    rows = np.arange(n)
    left = np.concatenate([rows, rows, n + by_sha.max() + 1 + a])
    right = np.concatenate([sha_node, hash_node, n + by_sha.max() + 1 + b])
    labels = cluster_labels(m, left, right)[:n]
    _, cluster = np.unique(labels, return_inverse=True)
    shas_per_cluster = np.zeros(cluster.max() + 1, dtype=np.int64)
    first = np.unique(np.stack([cluster, by_sha], axis=1), axis=0)
    np.add.at(shas_per_cluster, first[:, 0], 1)
    return cluster.astype(np.int64), shas_per_cluster[cluster] == 1
