"""A closed-loop round's verdict (see jobs.loop): the new model against the pre-labeler it
started from, on the test split (else val); promoted when it scores higher: it becomes
the default model for autolabel and the smart tools (an audit entry with the figures),
the images nobody has reviewed are pre-labeled again with it, and the last active-learning
selection is run again with it."""

from __future__ import annotations

from typing import Any

import orjson

from labelpilot.jobs.engine import list_jobs, submit
from labelpilot.workspace import Workspace

# what the loop trains per workspace task, and the metric it compares on
LOOP_TASKS = {"ocr": ("ocr-rec", "rec_line_accuracy"), "detect": ("detect", "map50")}
LOOP_USER = "loop"


def _score(ws: Workspace, model: str | None, metric: str, split: str) -> float | None:
    from labelpilot.evaluation.run import evaluate_model

    if model is None:
        return None
    value = evaluate_model(ws, model_name=model, split=split).get(metric)
    return None if value is None else float(value)


def confirmed_labels(ws: Workspace, task: str, split: str) -> int:
    """The accepted (or edited) labels of `split` a training `task` learns from: text
    lines for the recognizer, regions for a detector."""
    from labelpilot.store import repo

    with ws.engine.connect() as conn:
        regions, lines = repo.confirmed_counts(conn, split)
    return lines if task == "ocr-rec" else regions


def _split_to_compare_on(ws: Workspace, task: str) -> str | None:
    return next((s for s in ("test", "val") if confirmed_labels(ws, task, s)), None)


def judge(ws: Workspace, model: str, loop: dict[str, Any]) -> dict[str, Any]:
    """A loop round's new `model` against the pre-labeler it started from: promoted when it
    scores higher on the test split (else val); see the module for what follows."""
    from labelpilot.store import audit, repo

    task, metric = LOOP_TASKS[ws.config.task]
    against = loop.get("against")
    out: dict[str, Any] = {"round": loop.get("round"), "model": model, "against": against,
                           "metric": metric, "promoted": False}
    split = _split_to_compare_on(ws, task)
    if split is None:
        out["reason"] = "no accepted labels in the test or val split to compare the models on"
        return out
    new, old = _score(ws, model, metric, split), _score(ws, against, metric, split)
    out.update(split=split, new=new, current=old)
    if new is None or (old is not None and new <= old):
        out["reason"] = (f"{model} scored {new if new is None else round(new, 4)} on {split}, "
                         f"not above {against}'s {old if old is None else round(old, 4)}: "
                         "kept, not promoted")
        return out
    ws.config.prelabeler = model
    ws.save_config()
    out["promoted"] = True
    out["reason"] = (f"{model} scored {new:.4f} on {split}"
                     + (f", above {against}'s {old:.4f}" if old is not None else "")
                     + ": now the default model for autolabel and the smart tools")
    with ws.transaction() as conn:
        audit.record(conn, [{"image_id": 0, "annotation_id": None, "action": "promote",
                             "username": LOOP_USER, "at": repo.now(),
                             "before": orjson.dumps({"model": against, metric: old}).decode(),
                             "after": orjson.dumps({"model": model, metric: new,
                                                    "split": split}).decode()}])
    out.update(_follow_up(ws, model))
    return out


def last_selection(ws: Workspace) -> dict[str, Any] | None:
    """The parameters of the newest finished active-learning selection, if any."""
    with ws.engine.connect() as conn:
        last = next((j for j in list_jobs(conn) if j.kind == "select" and j.status == "done"),
                    None)
    return last.params if last else None


def _follow_up(ws: Workspace, model: str) -> dict[str, Any]:
    """After a promotion: the images nobody has reviewed pre-labeled again, and the last
    selection run again with the new model (job ids)."""
    from labelpilot.active.select import repeat_selection
    from labelpilot.jobs.autolabel import plan_autolabel

    out: dict[str, Any] = {"autolabel_job": None, "select_job": None}
    kind, params = plan_autolabel(ws, model=model, images="all")
    again = repeat_selection(ws, last_selection(ws), model)
    with ws.transaction() as conn:
        out["autolabel_job"] = submit(conn, kind=kind, params=params, user=LOOP_USER,
                                      known=(kind,)).id
        if again is not None:
            out["select_job"] = submit(conn, kind="select", params=again.public(),
                                       user=LOOP_USER, known=("select",)).id
    return out
