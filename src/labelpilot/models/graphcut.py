"""The offline default: an interactive graph-cut segmenter that needs no weights.

Per image (the "embedding", computed once): the image at a working size, its colours
quantised into a 3-D histogram index, and the contrast-sensitive edge weights of the pixel
grid (GrabCut's, Rother et al. 2004). Per prompt: colour models (smoothed histograms) for
object and background, a graph cut (Boykov-Kolmogorov, PyMaxflow) with the clicks as hard
seeds, iterated as GrabCut does. What makes it need fewer clicks than plain GrabCut:

- a location prior: object pixels are cheap near positive clicks and dear far from them
  (geodesically, through the image's edges), so one click gives one object, not every
  pixel of a similar colour;
- the previous mask as a prior that weakens near the newest click: a correction changes
  the mask where the person clicked, not everywhere;
- the graph is cut only in a region of interest around the mask and clicks, and the colour
  models are histograms, so a click costs tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from labelpilot.models.base import MaskProposal, Prompt

BINS = 48
EPS = 1e-4


def _maxflow():  # type: ignore[no-untyped-def]
    import maxflow

    return maxflow


@dataclass
class GraphEmbedding:
    size: tuple[int, int]  # original (width, height)
    scale: float  # work = original * scale
    bins: np.ndarray  # int32 HxW colour-histogram index
    right: np.ndarray  # float32 HxW edge weight to the right neighbour
    down: np.ndarray  # float32 HxW edge weight to the pixel below
    edge_cost: np.ndarray  # float32 HxW geodesic step cost (high on edges)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.bins, self.right, self.down, self.edge_cost))

    def geo_graph(self):  # type: ignore[no-untyped-def]
        """The half-size 8-connected grid graph whose edge lengths are the step costs."""
        cached = getattr(self, "_geo", None)
        if cached is not None:
            return cached
        from scipy.sparse import coo_matrix

        h, w = self.edge_cost.shape
        c = cv2.resize(self.edge_cost, (max(1, w // 2), max(1, h // 2)),
                       interpolation=cv2.INTER_AREA)
        gh, gw = c.shape
        idx = np.arange(gh * gw).reshape(gh, gw)
        rows, cols, vals = [], [], []
        for dy, dx, length in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.4142), (1, -1, 1.4142)):
            a = idx[: gh - dy, max(0, -dx): gw - max(0, dx)]
            b = idx[dy:, max(dx, 0): gw + min(dx, 0)]
            ca = c.ravel()[a.ravel()]
            cb = c.ravel()[b.ravel()]
            rows.append(a.ravel())
            cols.append(b.ravel())
            vals.append(length * (ca + cb) / 2)
        g = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(gh * gw, gh * gw)).tocsr()
        self._geo = (g, (gh, gw))
        return self._geo


@dataclass
class GraphCutParams:
    work_size: int = 480
    gamma: float = 25.0  # pairwise weight
    seed_radius: float = 1 / 160  # of the working image's long side (3 px at 480)
    iterations: int = 2
    box_iterations: int = 5  # for a box alone
    location: float = 1.0  # cost of object pixels per unit of geodesic distance (of the diagonal)
    location_neg: float = 0.3  # the same for background pixels and negative clicks
    geo_edge: float = 2.0  # how much an image edge lengthens a geodesic path
    local_radius: float = 0.04  # of the diagonal: the neighbourhood of a click's colour model
    local_reach: float = 1.0  # of the diagonal: how far (geodesically) a click's model applies
    keep: float = 1.0  # cost of flipping a pixel of the previous mask far from the click
    keep_sigma: float = 0.08  # of the diagonal: how far a correction reaches freely
    roi_margin: float = 0.15  # of the diagonal, around the mask and clicks
    coarse_above: int = 40_000  # pixels: larger regions are cut on 2x2 blocks, then refined
    band: int = 2  # pixels either side of the coarse boundary refined at full resolution


class GraphCutSegmenter:
    name = "graphcut"
    version = "1"

    def __init__(self, params: GraphCutParams | None = None) -> None:
        self.p = params or GraphCutParams()
        # the libraries a click needs, imported with the model, not by the first click
        # (scipy's graph routines took 90 ms of one)
        import scipy.sparse.csgraph  # noqa: F401

        _maxflow()

    # ---- embedding -------------------------------------------------------------------
    def embed(self, image: np.ndarray) -> GraphEmbedding:
        h, w = image.shape[:2]
        scale = min(1.0, self.p.work_size / max(h, w))
        if scale < 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)),
                               interpolation=cv2.INTER_AREA)
        img = image.astype(np.float32)
        q = (image.astype(np.int32) * BINS) >> 8
        bins = (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]
        dr = np.zeros(img.shape[:2], np.float32)
        dd = np.zeros(img.shape[:2], np.float32)
        dr[:, :-1] = ((img[:, 1:] - img[:, :-1]) ** 2).sum(-1)
        dd[:-1] = ((img[1:] - img[:-1]) ** 2).sum(-1)
        mean = (dr[:, :-1].mean() + dd[:-1].mean()) / 2
        beta = 1.0 / (2 * mean + EPS)
        right = (self.p.gamma * np.exp(-beta * dr)).astype(np.float32)
        down = (self.p.gamma * np.exp(-beta * dd)).astype(np.float32)
        right[:, -1] = 0
        down[-1] = 0
        grad = np.sqrt(np.maximum(dr, dd))
        edge_cost = (1.0 + self.p.geo_edge * grad / (grad.mean() * 4 + EPS)).astype(np.float32)
        return GraphEmbedding((w, h), scale, bins.astype(np.int32), right, down, edge_cost)

    def save_embedding(self, emb: GraphEmbedding) -> dict[str, np.ndarray]:
        return {"size": np.array(emb.size), "scale": np.array([emb.scale]), "bins": emb.bins,
                "right": emb.right, "down": emb.down, "edge_cost": emb.edge_cost}

    def load_embedding(self, a: dict[str, np.ndarray]) -> GraphEmbedding:
        return GraphEmbedding((int(a["size"][0]), int(a["size"][1])), float(a["scale"][0]),
                              a["bins"], a["right"], a["down"], a["edge_cost"])

    # ---- prediction ------------------------------------------------------------------
    def predict(self, emb: GraphEmbedding, prompt: Prompt) -> list[MaskProposal]:
        p = self.p
        h, w = emb.bins.shape
        W, H = emb.size
        pr = prompt.scaled(w / W, h / H)
        prev = None
        if prompt.previous is not None and prompt.previous.any():
            prev = cv2.resize(prompt.previous.astype(np.uint8), (w, h),
                              interpolation=cv2.INTER_NEAREST).astype(bool)
        diag = float(np.hypot(h, w))
        pos = [c for c in pr.clicks if c.positive]
        neg = [c for c in pr.clicks if not c.positive]

        fg_seed = np.zeros((h, w), np.uint8)
        bg_seed = np.zeros((h, w), np.uint8)
        radius = max(2, round(p.seed_radius * max(h, w)))
        for c in pos:
            cv2.circle(fg_seed, (int(c.x), int(c.y)), radius, 1, -1)
        for c in neg:
            cv2.circle(bg_seed, (int(c.x), int(c.y)), radius, 1, -1)
        outside = np.zeros((h, w), bool)
        if pr.box is not None:
            x1, y1, x2, y2 = pr.box
            outside[:] = True
            outside[max(0, int(y1)):int(np.ceil(y2)), max(0, int(x1)):int(np.ceil(x2))] = False
        fg_s = fg_seed.astype(bool) & ~outside
        bg_s = bg_seed.astype(bool) | outside
        fg_s &= ~bg_seed.astype(bool)

        # region of interest
        roi = (0, 0, w, h)
        if pr.box is not None:
            m = int(0.02 * diag) + 2
            x1, y1, x2, y2 = pr.box
            roi = (int(x1) - m, int(y1) - m, int(np.ceil(x2)) + m, int(np.ceil(y2)) + m)
        elif prev is not None:
            ys, xs = np.nonzero(prev)
            cx = [c.x for c in pr.clicks]
            cy = [c.y for c in pr.clicks]
            m = int(p.roi_margin * diag)
            roi = (int(min(xs.min(), *cx)) - m, int(min(ys.min(), *cy)) - m,
                   int(max(xs.max(), *cx)) + m, int(max(ys.max(), *cy)) + m)
        rx1, ry1 = max(0, roi[0]), max(0, roi[1])
        rx2, ry2 = min(w, roi[2]), min(h, roi[3])
        sl = (slice(ry1, ry2), slice(rx1, rx2))

        # location prior: geodesic distance from the positive clicks
        loc: np.ndarray = np.zeros((h, w), np.float32)
        loc_bg: np.ndarray = np.zeros((h, w), np.float32)
        geo_pos = geo_neg = None
        if pos:
            geo_pos = _geodesic(emb, fg_s if fg_s.any() else fg_seed.astype(bool))
            if pr.box is None:
                loc = p.location * geo_pos / diag
        if neg:
            geo_neg = _geodesic(emb, bg_seed.astype(bool))
            loc_bg = p.location_neg * geo_neg / diag
        # each click's own colour model: its geodesic neighbourhood
        r = p.local_radius * diag
        local_fg = _local_models(emb.bins, pos, geo_pos, r)
        local_bg = _local_models(emb.bins, neg, geo_neg, r)
        reach = p.local_reach * diag
        near_pos = (geo_pos < reach)[sl] if geo_pos is not None else None
        near_neg = (geo_neg < reach)[sl] if geo_neg is not None else None
        # the terms that do not change over the iterations: location priors, and the keep
        # prior (flipping the previous mask is dear away from the newest click)
        prior_fg, prior_bg = loc[sl], loc_bg[sl]
        if prev is not None and pr.clicks:
            last = pr.clicks[-1]
            yy, xx = np.mgrid[ry1:ry2, rx1:rx2]
            d2 = ((xx - last.x) ** 2 + (yy - last.y) ** 2) / (p.keep_sigma * diag) ** 2
            keep = p.keep * (1 - np.exp(-d2 / 2))
            prior_fg = prior_fg + np.where(prev[sl], 0, keep)
            prior_bg = prior_bg + np.where(prev[sl], keep, 0)
        bins = emb.bins[sl]
        fixed_fg, fixed_bg = fg_s[sl], bg_s[sl]

        # initial estimate
        if prev is not None:
            est = prev.copy()
        elif pr.box is not None:
            est = ~outside
        else:
            est = loc < p.location * 0.05
        est = (est | fg_s) & ~bg_s

        cur = est
        iterations = p.iterations
        if pr.box is not None and not pr.clicks:
            iterations = p.box_iterations
        right, down = emb.right[sl], emb.down[sl]
        coarse = right.size > p.coarse_above
        d_fg = d_bg = None
        for _ in range(iterations):
            if not (cur & ~bg_s).any():
                break
            d_fg = _colour_cost(bins, (cur & ~bg_s)[sl], local_fg, near_pos) + prior_fg
            d_bg = _colour_cost(bins, (~cur | bg_s)[sl], local_bg, near_neg) + prior_bg
            big = 1e6  # the seeds: hard constraints
            d_fg = np.where(fixed_bg, big, np.where(fixed_fg, 0, d_fg))
            d_bg = np.where(fixed_fg, big, np.where(fixed_bg, 0, d_bg))
            fg_roi = _cut_coarse(d_fg, d_bg, right, down) if coarse else \
                _cut_grid(d_fg, d_bg, right, down)
            new = np.zeros((h, w), bool)
            new[sl] = fg_roi
            new |= fg_s
            new &= ~bg_s
            if (new == cur).all():
                cur = new
                break
            cur = new
        if coarse and d_fg is not None and d_bg is not None:
            # the coarse cut's boundary, refined at full resolution in a narrow band
            lab = cur[sl]
            k = np.ones((3, 3), np.uint8)
            u8 = lab.astype(np.uint8)
            band = cv2.dilate(u8, k, iterations=p.band) != cv2.erode(u8, k, iterations=p.band)
            band &= ~(fixed_fg | fixed_bg)
            if band.any():
                cur = cur.copy()
                cur[sl] = _cut_band(d_fg, d_bg, right, down, lab, band)
        if pos:
            cur = _keep_connected(cur, pos)
        mask = cv2.resize(cur.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0 \
            if (w, h) != (W, H) else cur
        return [MaskProposal(mask, None)]  # a min cut has no estimate of its own IoU


_RIGHT = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]])
_DOWN = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]])


def _cut_grid(d_fg: np.ndarray, d_bg: np.ndarray, right: np.ndarray, down: np.ndarray
              ) -> np.ndarray:
    """Min cut on the 4-connected grid; True = object. d_*: the cost of each label."""
    g = _maxflow().Graph[float]()
    nodes = g.add_grid_nodes(d_fg.shape)
    g.add_grid_edges(nodes, weights=right, structure=_RIGHT, symmetric=True)
    g.add_grid_edges(nodes, weights=down, structure=_DOWN, symmetric=True)
    # source = object: a node left on the sink side pays its source capacity
    g.add_grid_tedges(nodes, d_bg, d_fg)
    g.maxflow()
    return ~g.get_grid_segments(nodes)  # type: ignore[no-any-return]


def _cut_coarse(d_fg: np.ndarray, d_bg: np.ndarray, right: np.ndarray, down: np.ndarray
                ) -> np.ndarray:
    """The same cut on a grid of 2x2 blocks: unaries summed, and each block edge weighs
    the two pixel edges it stands for. Returned at full resolution."""
    h, w = d_fg.shape
    ph, pw = h % 2, w % 2

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, ph), (0, pw))) if ph or pw else a

    def pool(a: np.ndarray) -> np.ndarray:
        a = pad(a)
        return a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).sum((1, 3))

    r, d = pad(right), pad(down)
    r2 = r[0::2, 1::2] + r[1::2, 1::2]
    d2 = d[1::2, 0::2] + d[1::2, 1::2]
    lab = _cut_grid(pool(d_fg), pool(d_bg), r2, d2)
    return np.repeat(np.repeat(lab, 2, 0), 2, 1)[:h, :w]


def _cut_band(d_fg: np.ndarray, d_bg: np.ndarray, right: np.ndarray, down: np.ndarray,
              lab: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Min cut over the `band` pixels only, the others fixed to `lab` (their edges to the
    band become the band pixels' unary costs)."""
    ids = np.flatnonzero(band)
    idx = np.full(lab.shape, -1, np.int64)
    idx.flat[ids] = np.arange(ids.size)
    cost_fg = d_fg.ravel()[ids].astype(np.float64)
    cost_bg = d_bg.ravel()[ids].astype(np.float64)
    g = _maxflow().Graph[float]()
    nodes = g.add_nodes(ids.size)
    pairs = ((right[:, :-1], (slice(None), slice(0, -1)), (slice(None), slice(1, None))),
             (down[:-1], (slice(0, -1), slice(None)), (slice(1, None), slice(None))))
    for wt, a_sl, b_sl in pairs:
        ia, ib = idx[a_sl], idx[b_sl]
        both = (ia >= 0) & (ib >= 0)
        if both.any():
            g.add_edges(ia[both], ib[both], wt[both], wt[both])
        for mine, other, other_sl in ((ia, ib, b_sl), (ib, ia, a_sl)):
            m = (mine >= 0) & (other < 0)
            fixed_fg = lab[other_sl][m]
            ww = wt[m].astype(np.float64)
            np.add.at(cost_bg, mine[m][fixed_fg], ww[fixed_fg])  # next to object: BG costs
            np.add.at(cost_fg, mine[m][~fixed_fg], ww[~fixed_fg])
    g.add_grid_tedges(nodes, cost_bg, cost_fg)
    g.maxflow()
    out = lab.copy()
    out.flat[ids] = ~g.get_grid_segments(nodes)
    return out


def _hist(bins: np.ndarray, sel: np.ndarray) -> np.ndarray:
    hist = np.bincount(bins[sel], minlength=BINS ** 3).astype(np.float32)
    hist = _blur3(hist.reshape(BINS, BINS, BINS)).ravel()  # smooth over neighbouring colours
    return hist / (hist.sum() + EPS)


def _colour_cost(bins: np.ndarray, sel: np.ndarray, local: list[np.ndarray],
                 near: np.ndarray | None) -> np.ndarray:
    """-log colour likelihood per pixel: the region's histogram, or, near the clicks, the
    clicks' own histograms where those are higher."""
    hist = _hist(bins, sel)
    cost = -np.log(hist + 1e-6)[bins]
    if local and near is not None:
        both = hist
        for loc in local:
            both = np.maximum(both, loc)
        cost = np.where(near, -np.log(both + 1e-6)[bins], cost)
    return cost


def _local_models(bins: np.ndarray, clicks: list, geo: np.ndarray | None,  # type: ignore[type-arg]
                  radius: float) -> list[np.ndarray]:
    if geo is None:
        return []
    h, w = bins.shape
    out = []
    for c in clicks:
        x, y = int(c.x), int(c.y)
        r = int(radius)
        y1, y2, x1, x2 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        yy, xx = np.mgrid[y1:y2, x1:x2]
        near = ((xx - x) ** 2 + (yy - y) ** 2 <= r * r) & (geo[y1:y2, x1:x2] < radius)
        if near.any():
            out.append(_hist(bins[y1:y2, x1:x2], near))
    return out


BLUR_PASSES = 2


def _blur3(h: np.ndarray) -> np.ndarray:
    out = h.copy()
    for _ in range(BLUR_PASSES):
        for ax in range(3):
            out = 0.5 * out + 0.25 * (np.roll(out, 1, ax) + np.roll(out, -1, ax))
    return out


def _geodesic(emb: GraphEmbedding, seeds: np.ndarray) -> np.ndarray:
    """Geodesic distance (in work pixels) from `seeds` through the edge-cost map.

    Dijkstra (scipy) on the 8-connected grid at half the working size, bilinearly upsampled.
    """
    from scipy.sparse.csgraph import dijkstra

    graph, shape = emb.geo_graph()
    h, w = emb.bins.shape
    s = cv2.resize(seeds.astype(np.uint8), (shape[1], shape[0]),
                   interpolation=cv2.INTER_NEAREST).ravel().nonzero()[0]
    if s.size == 0:
        ys, xs = np.nonzero(seeds)
        s = np.array([min(ys[0] // 2, shape[0] - 1) * shape[1] + min(xs[0] // 2, shape[1] - 1)])
    d = dijkstra(graph, directed=False, indices=s, min_only=True)
    d = np.nan_to_num(d.reshape(shape).astype(np.float32), posinf=1e6) * 2
    return cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)


def _keep_connected(mask: np.ndarray, pos: list) -> np.ndarray:  # type: ignore[type-arg]
    """Keep the components that hold a positive click (or touch one's seed disk)."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    keep = set()
    h, w = mask.shape
    for c in pos:
        x, y = min(int(c.x), w - 1), min(int(c.y), h - 1)
        if lab[y, x]:
            keep.add(int(lab[y, x]))
    if not keep:
        return mask
    return np.isin(lab, list(keep))
