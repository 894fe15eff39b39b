"""Model quality as the review saw it: what became of each model version's proposals, how
well its scores predict acceptance (and the thresholds that follows), per-class acceptance
across versions, the classes and characters it confuses, and the images it does worst on."""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pandas as pd

from labelpilot.analytics.frames import OUTCOMES, Frames
from labelpilot.analytics.panel import Panel, missing, pct, plural

SECTION = "Model quality"
BINS = 10
# a suggested threshold keeps proposals of which at least this share were not rejected
KEEP = 0.9
TOP_CLASSES = 12
TABLE_ROWS = 30


def panels(f: Frames, models: list[dict[str, Any]]) -> list[Panel]:
    p = f.proposals()
    reviewed = p[p.outcome != "pending"]
    out = [outcomes(p), calibration(reviewed), thresholds(reviewed),
           class_acceptance(reviewed), confusion(reviewed)]
    if p.text.notna().any() or p.proposed_text.notna().any():
        out.append(char_confusions(reviewed))
    return [*out, worst_images(f, p), model_table(f, models)]


def _none(key: str, title: str, kind: str) -> Panel:
    return missing(key, SECTION, title, kind, "no model proposal has been reviewed yet")


def outcomes(p: pd.DataFrame) -> Panel:
    title = "What became of each model version's proposals"
    if p.empty:
        return missing("proposal_outcomes", SECTION, title, "stacked",
                       "no model has made proposals yet (run Pre-label)")
    table = pd.crosstab(p.source, p.outcome).reindex(columns=list(OUTCOMES), fill_value=0)
    judged = table[["accepted", "edited", "rejected"]].sum(axis=1)
    best = (table.accepted / judged.where(judged > 0)).dropna()
    caption = f"{plural(len(p), 'proposal')} from {plural(len(table), 'model version')}. "
    if len(best):
        src = best.idxmax()
        caption += (f"Pre-labeling precision (accepted unchanged of those reviewed): "
                    f"{src.removeprefix('model:')} {best.max():.0%}"
                    f" of {int(judged[src]):,} reviewed.")
    return Panel("proposal_outcomes", SECTION, title, "stacked", caption,
                 {"x": [s.removeprefix("model:") for s in table.index],
                  "series": {k: [int(v) for v in table[k]] for k in OUTCOMES},
                  "xlabel": "model version", "ylabel": "proposals"})


def calibration(r: pd.DataFrame) -> Panel:
    """Reliability diagram: reviewed proposals with a score in BINS equal bins, and the
    share of each bin accepted unchanged."""
    title = "Confidence calibration: score against the chance of acceptance"
    r = r[r.score.notna()]
    if r.empty:
        return _none("calibration", title, "reliability")
    s = r.score.clip(0.0, 1.0).to_numpy()
    b = np.minimum((s * BINS).astype(int), BINS - 1)
    ok = (r.outcome == "accepted").to_numpy()
    count = np.bincount(b, minlength=BINS)
    hit = np.bincount(b, weights=ok, minlength=BINS)
    mean = np.bincount(b, weights=s, minlength=BINS)
    share = [round(float(h / c), 4) if c else None for h, c in zip(hit, count, strict=True)]
    gap = float(np.sum(np.abs(hit - mean)) / len(s))  # expected calibration error
    caption = (f"{plural(len(s), 'reviewed proposal')}; expected calibration error "
               f"{gap:.3f} (0 when a score of 0.8 means accepted 80% of the time). "
               "Above the diagonal the model is under-confident, below it over-confident.")
    return Panel("calibration", SECTION, title, "reliability", caption,
                 {"edges": [i / BINS for i in range(BINS + 1)], "accepted": share,
                  "count": [int(c) for c in count],
                  "mean_score": [round(float(m / c), 4) if c else None
                                 for m, c in zip(mean, count, strict=True)],
                  "ece": round(gap, 4),
                  "xlabel": "proposal score", "ylabel": "share accepted unchanged"})


def thresholds(r: pd.DataFrame) -> Panel:
    """Per class: the lowest score at which the proposals scoring at least that were not
    rejected KEEP of the time or more (among reviewed ones)."""
    title = "Suggested score threshold per class"
    r = r[r.score.notna()]
    if r.empty:
        return _none("thresholds", title, "table")
    rows: list[list[Any]] = []
    for label, g in r.groupby("proposed_label"):
        g = g.sort_values("score", ascending=False)
        kept = (g.outcome != "rejected").to_numpy()
        precision = np.cumsum(kept) / np.arange(1, len(g) + 1)
        good = np.flatnonzero(precision >= KEEP)
        if len(good):
            i = int(good[-1])
            rows.append([str(label), len(g), pct(int((~kept).sum()), len(g)),
                         round(float(g.score.iloc[i]), 3), round(float(precision[i]), 3),
                         pct(i + 1, len(g))])
        else:
            rows.append([str(label), len(g), pct(int((~kept).sum()), len(g)), None, None, "0%"])
    rows.sort(key=lambda x: -int(x[1]))
    caption = (f"the lowest score per class at which {KEEP:.0%} of the reviewed proposals "
               "scoring at least that were kept (accepted or edited, not rejected); "
               "autolabel --min-score takes one.")
    return Panel("thresholds", SECTION, title, "table", caption,
                 {"columns": ["class", "reviewed", "rejected", "threshold",
                              "kept at threshold", "proposals above it"], "rows": rows})


def class_acceptance(r: pd.DataFrame) -> Panel:
    """Per model version and (proposed) class: the share of reviewed proposals accepted
    unchanged; for text, the share whose transcription was kept: line accuracy in use."""
    title = "Per-class acceptance across model versions"
    if r.empty:
        return _none("class_acceptance", title, "heatmap")
    text = r.proposed_text.notna()
    if text.all():
        right = (r.proposed_text == r.text) & (r.outcome != "rejected")
        what = "share of reviewed lines whose text was kept (line accuracy in use)"
    else:
        right = r.outcome == "accepted"
        what = "share of reviewed proposals accepted unchanged"
    r = r.assign(right=right.astype(float))
    top = r.proposed_label.value_counts().index[:TOP_CLASSES]
    sub = r[r.proposed_label.isin(top)]
    table = sub.pivot_table(index="source", columns="proposed_label", values="right",
                            aggfunc="mean")
    counts = sub.pivot_table(index="source", columns="proposed_label", values="right",
                             aggfunc="size")
    table = table.reindex(columns=list(top))
    counts = counts.reindex(index=table.index, columns=list(top))
    overall = r.groupby("source").right.mean()
    caption = f"{what}, per version and class ({plural(len(r), 'reviewed proposal')}). " + \
        "; ".join(f"{s.removeprefix('model:')}: {v:.1%}" for s, v in overall.items())
    return Panel("class_acceptance", SECTION, title, "heatmap", caption,
                 {"rows": [s.removeprefix("model:") for s in table.index],
                  "cols": [str(c) for c in table.columns],
                  "values": [[None if pd.isna(v) else round(float(v), 4) for v in row]
                             for row in table.to_numpy()],
                  "counts": [[0 if pd.isna(v) else int(v) for v in row]
                             for row in counts.to_numpy()],
                  "overall": {s.removeprefix("model:"): round(float(v), 4)
                              for s, v in overall.items()},
                  "xlabel": "class", "ylabel": "model version", "fmt": ".0%"})


def confusion(r: pd.DataFrame) -> Panel:
    """Reviewed proposals: the class proposed against the class kept (or rejected)."""
    title = "Proposed class against final class"
    if r.empty:
        return _none("class_confusion", title, "heatmap")
    final = r.label.where(r.outcome != "rejected", "(rejected)")
    top = list(r.proposed_label.value_counts().index[:TOP_CLASSES])
    cols = [c for c in final.value_counts().index if c in top][:TOP_CLASSES]
    if "(rejected)" in set(final):
        cols.append("(rejected)")
    table = pd.crosstab(r.proposed_label, final).reindex(index=top, columns=cols, fill_value=0)
    moved = r[(final != "(rejected)") & (final != r.proposed_label)]
    pairs = Counter(zip(moved.proposed_label, moved.label, strict=True)).most_common(3)
    caption = (f"{plural(len(moved), 'proposal')} of {len(r):,} reviewed changed class")
    caption += (": most often " + ", ".join(f"{a} → {b} ({n})" for (a, b), n in pairs) + "."
                if pairs else ".")
    return Panel("class_confusion", SECTION, title, "heatmap", caption,
                 {"rows": [str(x) for x in table.index], "cols": [str(c) for c in table.columns],
                  "values": [[int(v) for v in row] for row in table.to_numpy()],
                  "xlabel": "final class", "ylabel": "proposed class", "fmt": "d",
                  "changed": len(moved)})


def substitutions(said: str, meant: str) -> list[tuple[str, str]]:
    """The characters a reading got wrong, as (read, right) pairs: a replaced run of equal
    length pair by pair; otherwise the whole run ('' for nothing)."""
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, said, meant,
                                                      autojunk=False).get_opcodes():
        if op == "equal":
            continue
        a, b = said[i1:i2], meant[j1:j2]
        if op == "replace" and len(a) == len(b):
            out.extend(zip(a, b, strict=True))
        else:
            out.append((a, b))
    return out


def char_confusions(r: pd.DataFrame) -> Panel:
    title = "Characters the recognizer gets wrong most"
    t = r[r.proposed_text.notna() & r.text.notna() & (r.outcome != "rejected")]
    wrong = t[t.proposed_text != t.text]
    if t.empty:
        return missing("char_confusions", SECTION, title, "bar",
                       "no reviewed transcription proposals yet")
    pairs: Counter[tuple[str, str]] = Counter()
    for said, meant in zip(wrong.proposed_text, wrong.text, strict=True):
        pairs.update(substitutions(str(said), str(meant)))
    top = pairs.most_common(20)
    caption = (f"{plural(len(wrong), 'line')} of {len(t):,} reviewed had their text corrected "
               f"({pct(len(wrong), len(t))})")
    caption += (f"; most often read {top[0][0][0] or '∅'!r} for {top[0][0][1] or '∅'!r} "
                f"({top[0][1]} times)." if top else ".")
    return Panel("char_confusions", SECTION, title, "bar", caption,
                 {"x": [f"{a or '∅'} → {b or '∅'}" for (a, b), _ in top],
                  "series": {"corrections": [n for _, n in top]},
                  "pairs": [[a, b, n] for (a, b), n in top],
                  "xlabel": "read → right (∅: nothing)", "ylabel": "times"})


def worst_images(f: Frames, p: pd.DataFrame) -> Panel:
    """Images with reviewed proposals, by the model's mistakes: proposals rejected or
    edited, and labels people added that no model proposed (missed)."""
    title = "Images the model does worst on"
    r = p[p.outcome != "pending"]
    if r.empty:
        return missing("worst_images", SECTION, title, "table",
                       "no model proposal has been reviewed yet")
    g = r.assign(bad=r.outcome.isin(("rejected", "edited"))).groupby("image_id")
    bad = g.bad.sum().astype(int)
    total = g.size()
    human = f.annotations[(f.annotations.source == "human")
                          & (f.annotations.status != "rejected")
                          & f.annotations.image_id.isin(total.index)]
    missed = human.groupby("image_id").size().reindex(total.index, fill_value=0)
    errors = bad + missed
    rate = errors / (total + missed)
    df = pd.DataFrame({"errors": errors, "rate": rate, "bad": bad, "missed": missed,
                       "total": total}).sort_values(["errors", "rate"], ascending=False)
    df = df[df.errors > 0]
    names = dict(zip(f.images.id, f.images.file_name, strict=True))
    caption = (f"{plural(len(df), 'image')} of {len(total):,} with reviewed proposals had a "
               "mistake: a proposal rejected or edited, or a label the model missed.")
    if len(df):
        caption += f" Worst: {names.get(int(df.index[0]), '')} ({int(df.errors.iloc[0])})."
    head = df.head(TABLE_ROWS)
    return Panel("worst_images", SECTION, title, "table", caption,
                 {"columns": ["image", "mistakes", "rejected or edited", "missed",
                              "reviewed proposals", "error rate"],
                  "rows": [[names.get(int(i), ""), int(x.errors), int(x.bad), int(x.missed),
                            int(x.total), round(float(x.rate), 3)]
                           for i, x in zip(head.index, head.itertuples(), strict=True)],
                  "image_ids": [int(i) for i in head.index], "count": len(df)})


def model_table(f: Frames, models: list[dict[str, Any]]) -> Panel:
    """The workspace's models with the metrics their training recorded, and the loop's
    promotions (from the audit log)."""
    title = "Models and promotions"
    promos = f.audit[f.audit.action == "promote"]
    if not models and promos.empty:
        return missing("models", SECTION, title, "table",
                       "no model trained in this workspace yet")
    rows = []
    for m in models:
        metrics = {k: v for k, v in (m.get("metrics") or {}).items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        rows.append([m["name"], m["version"], m["task"],
                     ", ".join(f"{k} {v:.4g}" for k, v in list(metrics.items())[:6]) or "—",
                     "default" if m.get("default") else ""])
    for at, before, after in zip(promos.time, promos.before, promos.after, strict=True):
        b, a = orjson.loads(before or "{}"), orjson.loads(after or "{}")
        figures = ", ".join(f"{k} {v:.4g}" for k, v in a.items()
                            if isinstance(v, int | float) and not isinstance(v, bool))
        rows.append([a.get("model", ""), str(pd.Timestamp(at).strftime("%Y-%m-%d %H:%M")),
                     "promoted", f"{figures} (was {b.get('model')})", ""])
    caption = (f"{plural(len(models), 'trained model')} in the workspace, "
               f"{plural(len(promos), 'promotion')} by the closed loop.")
    return Panel("models", SECTION, title, "table", caption,
                 {"columns": ["model", "version or date", "task or event", "metrics", ""],
                  "rows": rows})
