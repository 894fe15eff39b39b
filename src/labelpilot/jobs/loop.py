"""The closed loop (a workspace setting, off by default): after every `loop.every` newly
accepted labels in the train split, a training job starts from the current pre-labeler;
when the new model beats it on the test split (else val), it is promoted: it becomes the
default model for autolabel and the smart tools (an audit entry with the figures), the
images nobody has reviewed are pre-labeled again with it, and the last active-learning
selection is run again with it. A worse model is kept, not promoted; a failed run leaves
the current model in place; one training at a time.

`start_if_due` is what the server's job runner calls when it is idle; a loop training job
asks `jobs.promote.judge` for its verdict once its model is registered."""

from __future__ import annotations

from typing import Any

from labelpilot.errors import LabelPilotError
from labelpilot.jobs.engine import list_jobs, submit
from labelpilot.jobs.promote import LOOP_TASKS, LOOP_USER, confirmed_labels
from labelpilot.workspace import Workspace


def _rounds(ws: Workspace) -> tuple[list[Any], bool]:
    """The loop's training jobs so far (newest first), and whether any training is queued
    or running."""
    from labelpilot.jobs.train import TRAINING_KINDS

    with ws.engine.connect() as conn:
        jobs = [j for j in list_jobs(conn, limit=500) if j.kind in TRAINING_KINDS.values()]
    busy = any(j.status in ("queued", "running") for j in jobs)
    return [j for j in jobs if j.params.get("loop")], busy


def loop_due(ws: Workspace) -> tuple[str, dict[str, Any]] | None:
    """The training job (kind, params) the loop starts now, or None: off, another training
    queued or running, fewer than `every` labels accepted since the last round, or not
    enough to train on."""
    from labelpilot.jobs.train import plan_training, training_readiness

    cfg = ws.config.loop
    if not cfg.enabled or ws.config.task not in LOOP_TASKS:
        return None
    task, _ = LOOP_TASKS[ws.config.task]
    rounds, busy = _rounds(ws)
    if busy or training_readiness(ws, task) is not None:
        return None
    accepted = confirmed_labels(ws, task, "train")
    before = int(rounds[0].params["loop"]["accepted"]) if rounds else 0
    if accepted - before < cfg.every:
        return None
    number = len(rounds) + 1
    current = ws.prelabeler
    kind, params = plan_training(task=task, minutes=cfg.minutes,
                                 name=f"loop-{ws.config.task}-{number}", base=current)
    params["loop"] = {"round": number, "accepted": accepted, "against": current}
    return kind, params


def start_if_due(ws: Workspace) -> int | None:
    """Queue the loop's next training if it is due (see `loop_due`): the job's id."""
    due = loop_due(ws)
    if due is None:
        return None
    kind, params = due
    from labelpilot.jobs.train import ensure_no_other_training

    try:
        with ws.transaction() as conn:
            ensure_no_other_training(conn)
            return submit(conn, kind=kind, params=params, user=LOOP_USER, known=(kind,)).id
    except LabelPilotError:  # another runner queued one first
        return None
