"""Labeling progress from the audit log: images by review state over time, each person's
throughput, and what reviewers made of each annotator's work."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pandas as pd

from labelpilot.analytics.frames import Frames, content_changed
from labelpilot.analytics.panel import Panel, missing, plural

SECTION = "Labeling progress"
STATES = ("new", "prelabeled", "in_review", "submitted", "done")
# a pause longer than this between two of a person's actions is a break, not work
BREAK_S = 300.0
POINTS = 60


def panels(f: Frames, now: datetime | None = None) -> list[Panel]:
    return [burn_down(f, now or datetime.now(UTC)), throughput(f), review_outcomes(f)]


def _state(v: str | None) -> str | None:
    return orjson.loads(v).get("review_state") if v else None


def burn_down(f: Frames, now: datetime) -> Panel:
    """Images per review state at POINTS times from the first image's arrival (or `since`)
    to now: each image enters in the state its first review-state change started from (its
    present state if it never changed) and moves at each change in the audit log."""
    title = "Burn-down: images by review state over time"
    im = f.images
    if im.empty:
        return missing("burn_down", SECTION, title, "area", "no images yet")
    rs = f.audit[f.audit.action == "review_state"]
    rs = rs.assign(old=[_state(v) for v in rs.before], new=[_state(v) for v in rs.after])
    first = rs.drop_duplicates("image_id").set_index("image_id").old
    start_state = im.review_state.where(~im.id.isin(first.index),
                                        im.id.map(first)).fillna(im.review_state)
    created = im.created_at
    events = [pd.DataFrame({"t": created, "state": start_state, "d": 1})]
    moves = rs[rs.old.notna() & rs.new.notna() & (rs.old != rs.new)]
    at = moves.time
    events += [pd.DataFrame({"t": at, "state": moves.old, "d": -1}),
               pd.DataFrame({"t": at, "state": moves.new, "d": 1})]
    ev = pd.concat(events, ignore_index=True).sort_values("t", kind="stable")
    t0 = pd.Timestamp(f.since) if f.since is not None else ev.t.min()
    t1 = max(pd.Timestamp(now), ev.t.max())
    grid = pd.date_range(t0, t1, periods=POINTS) if t1 > t0 else pd.DatetimeIndex([t0])
    series: dict[str, list[int]] = {}
    times = ev.t.to_numpy()
    for state in STATES:
        mine = (ev.state == state).to_numpy()
        level = np.cumsum(np.where(mine, ev.d.to_numpy(), 0))
        idx = np.searchsorted(times, grid.to_numpy(), side="right") - 1
        series[state] = [int(level[i]) if i >= 0 else 0 for i in idx]
    done = series["done"][-1]
    caption = (f"{done:,} of {len(im):,} images done ({100.0 * done / len(im):.1f}%); "
               f"{plural(len(moves), 'review-state change')} in the audit log.")
    if len(moves) > 1:
        span_h = (at.max() - at.min()).total_seconds() / 3600.0
        became_done = int((moves.new == "done").sum())
        if span_h > 0 and became_done:
            rate = became_done / span_h
            left = len(im) - done
            caption += (f" At {rate:.1f} images done per hour (over the changes' span), "
                        f"the {left:,} left take about {left / rate:.1f} hours.")
    return Panel("burn_down", SECTION, title, "area", caption,
                 {"t": [g.isoformat() for g in grid], "series": series,
                  "xlabel": "time (UTC)", "ylabel": "images"})


def _active(times: pd.Series) -> float:
    """Seconds of work in a person's sorted action times: gaps up to BREAK_S."""
    gaps = times.diff().dt.total_seconds().dropna().to_numpy()
    return float(gaps[gaps <= BREAK_S].sum())


def throughput(f: Frames) -> Panel:
    """Per person: labels made or reviewed (distinct annotations they created, changed,
    accepted, rejected or deleted) per hour of active time (pauses over 5 min left out)."""
    title = "Throughput per person"
    w = f.audit[f.audit.action.isin(("create", "update", "delete", "accepted", "rejected",
                                     "review_state")) & f.audit.username.notna()]
    if w.empty:
        return missing("throughput", SECTION, title, "bar",
                       "no one has changed a label yet (the audit log is empty)")
    rows = []
    for user, g in w.groupby("username"):
        labels = int(g[g.action != "review_state"].annotation_id.dropna().nunique())
        active = _active(g.time.sort_values())
        rows.append((str(user), labels, active))
    timed = [r for r in rows if r[2] > 0 and r[1] > 0]
    if not timed:
        return missing("throughput", SECTION, title, "bar",
                       "no one has done two actions within 5 minutes of each other yet")
    timed.sort(key=lambda r: -r[1] / r[2])
    per_hour = [round(r[1] / (r[2] / 3600.0), 1) for r in timed]
    sec = [round(r[2] / r[1], 1) for r in timed]
    caption = (f"fastest: {timed[0][0]} at {per_hour[0]:g} labels per hour "
               f"({sec[0]:g} s per label); median {float(np.median(sec)):g} s per label. "
               f"Active time counts pauses up to {BREAK_S / 60:.0f} min.")
    return Panel("throughput", SECTION, title, "bar", caption,
                 {"x": [r[0] for r in timed], "series": {"labels per hour": per_hour},
                  "seconds_per_label": sec, "labels": [r[1] for r in timed],
                  "active_hours": [round(r[2] / 3600.0, 3) for r in timed],
                  "xlabel": "person", "ylabel": "labels per active hour"})


def review_outcomes(f: Frames) -> Panel:
    """Per annotator: the annotations they made or changed first, and the last verdict of
    someone else on each (accepted, edited, rejected or deleted), or pending."""
    title = "Review outcomes per annotator"
    a = f.audit[f.audit.annotation_id.notna() & f.audit.username.notna()
                & f.audit.action.isin(("create", "update", "delete", "accepted", "rejected"))]
    if a.empty:
        return missing("review_outcomes", SECTION, title, "stacked",
                       "no annotation has been made or changed by a person yet")
    outcome: dict[int, tuple[str, str]] = {}
    for aid, action, user, before, after in zip(a.annotation_id, a.action, a.username,
                                                a.before, a.after, strict=True):
        aid = int(aid)
        if aid not in outcome:
            if action in ("create", "update"):
                outcome[aid] = (str(user), "pending")
            continue
        author, _ = outcome[aid]
        if user == author:
            continue
        if action in ("accepted", "rejected"):
            outcome[aid] = (author, action)
        elif action == "delete":
            outcome[aid] = (author, "rejected")
        else:
            b, c = orjson.loads(before or "{}"), orjson.loads(after or "{}")
            if content_changed(b, c):
                outcome[aid] = (author, "edited")
            elif c.get("status") in ("accepted", "rejected"):
                outcome[aid] = (author, c["status"])
    if not outcome:
        return missing("review_outcomes", SECTION, title, "stacked",
                       "no annotation has been made or changed by a person yet")
    df = pd.DataFrame(list(outcome.values()), columns=["annotator", "outcome"])
    table = pd.crosstab(df.annotator, df.outcome)
    kinds = [k for k in ("accepted", "edited", "rejected", "pending")]
    table = table.reindex(columns=kinds, fill_value=0)
    judged = table[["accepted", "edited", "rejected"]].sum(axis=1)
    rate = (table.accepted / judged.where(judged > 0)).dropna()
    caption = (f"{plural(len(df), 'annotation')} by {plural(len(table), 'annotator')}; "
               f"{int(judged.sum()):,} judged by someone else.")
    if len(rate):
        caption += (f" Highest share accepted unchanged: {rate.idxmax()} "
                    f"({rate.max():.0%}); lowest: {rate.idxmin()} ({rate.min():.0%}).")
    return Panel("review_outcomes", SECTION, title, "stacked", caption,
                 {"x": [str(k) for k in table.index],
                  "series": {k: [int(v) for v in table[k]] for k in kinds},
                  "xlabel": "annotator", "ylabel": "annotations"})
