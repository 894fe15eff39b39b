"""Diversity sampling: k-center greedy (Sener and Savarese, "Active Learning for
Convolutional Neural Networks: A Core-Set Approach", ICLR 2018) on image embeddings:
each pick is the pool image farthest from everything labeled or picked so far."""

from __future__ import annotations

import numpy as np

_CHUNK = 2048


def _nearest(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Each point's Euclidean distance to its nearest center (in chunks of centers)."""
    out = np.full(len(points), np.inf, np.float32)
    sq = (points * points).sum(1)
    for i in range(0, len(centers), _CHUNK):
        c = centers[i:i + _CHUNK]
        d2 = sq[:, None] + (c * c).sum(1)[None, :] - 2.0 * points @ c.T
        out = np.minimum(out, np.sqrt(np.clip(d2, 0, None)).min(1))
    return out


def k_center_greedy(pool: np.ndarray, labeled: np.ndarray, budget: int, *, seed: int = 0,
                    first: int | None = None) -> list[tuple[int, float]]:
    """`budget` indices into `pool` [N, D] in pick order, each with its distance to the
    nearest labeled or earlier-picked vector when picked. With nothing labeled, the first
    pick is `first` where given, else the pool's point nearest its mean (a typical
    image), or a random one when `seed` > 0."""
    pool = np.asarray(pool, np.float32)
    budget = min(budget, len(pool))
    if budget <= 0:
        return []
    if len(labeled):
        dist = _nearest(pool, np.asarray(labeled, np.float32))
    else:
        dist = np.full(len(pool), np.inf, np.float32)
    picks: list[tuple[int, float]] = []
    if not len(labeled):
        if first is None:
            first = (int(np.random.default_rng(seed).integers(len(pool))) if seed > 0
                     else int(_nearest(pool, pool.mean(0, keepdims=True)).argmin()))
        picks.append((first, float("inf")))
        dist = np.minimum(dist, _nearest(pool, pool[first:first + 1]))
        dist[first] = -1.0
    while len(picks) < budget:
        k = int(dist.argmax())
        picks.append((k, float(dist[k])))
        dist = np.minimum(dist, _nearest(pool, pool[k:k + 1]))
        dist[k] = -1.0  # never picked twice, even among identical images
    return picks
