"""Label Studio's ML backend protocol on the model server: a Label Studio project
connects `http://HOST:PORT/labelstudio/MODEL` as its ML backend and gets MODEL's
proposals as predictions.

Label Studio calls `GET {url}/health`, `POST {url}/setup` (the project's labeling config,
its address and a token to read its images), `POST {url}/predict` (tasks -> one
prediction per task) and `POST {url}/webhook` (annotation events). The labeling config
decides what is written: a detector's boxes under its `RectangleLabels` (else as
four-point `PolygonLabels`), an OCR model's lines as regions of its `Polygon` /
`PolygonLabels` (else `Rectangle` / `RectangleLabels`) tool with the transcription in a
per-region `TextArea` (and the `Labels` class where the config has one). Label Studio
signs in with HTTP Basic auth (any user name; the password is a LabelPilot API key) or a
bearer token. Images are read from the data URLs of the tasks: `data:` URLs, or paths and
URLs on the Label Studio host the project named in /setup (or `--label-studio-url`), with
its token; no other host is fetched from.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urljoin, urlparse

import anyio
import numpy as np
from defusedxml import ElementTree as SafeET
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from labelpilot.annotations import Annotation, Mask
from labelpilot.errors import AuthError, LabelPilotError, ValidationError
from labelpilot.formats.labelstudio import ls_results
from labelpilot.imageio import decode_bgr
from labelpilot.users import UserInfo, user_for_token
from labelpilot.workspace import Workspace

log = logging.getLogger("labelpilot.serving")

MAX_IMAGE_BYTES = 50 * 1024 * 1024
basic = HTTPBasic(auto_error=False)
bearer = HTTPBearer(auto_error=False)

BOX_CONTROLS = ("rectanglelabels", "polygonlabels")
SHAPE_TOOLS = ("polygon", "polygonlabels", "rectangle", "rectanglelabels")


@dataclass(frozen=True)
class Control:
    tag: str  # lower-case tag name: rectanglelabels, textarea, ...
    name: str
    to_name: str
    labels: tuple[str, ...] = ()
    per_region: bool = False


@dataclass
class LabelingConfig:
    """The parts of a Label Studio labeling config a model can fill."""

    image: str  # the Image tag's name (the controls' toName)
    key: str  # the task data key its value names ($image -> image)
    controls: list[Control] = field(default_factory=list)

    @classmethod
    def parse(cls, xml: str) -> LabelingConfig:
        try:
            root = SafeET.fromstring(xml)
        except Exception as e:
            raise ValidationError(f"the labeling config is not valid XML ({e})") from None
        images = [el for el in root.iter() if el.tag.lower() == "image"]
        if not images:
            raise ValidationError("the labeling config has no <Image> tag",
                                  hint="LabelPilot's models label images")
        image = images[0]
        name, value = image.get("name", ""), image.get("value", "")
        if not name or not value.startswith("$"):
            raise ValidationError('the <Image> tag needs a name and a value="$key"')
        controls = []
        for el in root.iter():
            tag = el.tag.lower()
            if tag not in (*SHAPE_TOOLS, "brushlabels", "keypointlabels", "labels", "textarea"):
                continue
            if el.get("toName") != name:
                continue
            labels = tuple(c.get("value", "") for c in el if c.tag.lower() == "label")
            controls.append(Control(tag, el.get("name", ""), name, labels,
                                    el.get("perRegion", "").lower() == "true"))
        return cls(name, value[1:], controls)

    def first(self, *tags: str) -> Control | None:
        for t in tags:  # in the order of preference given
            for c in self.controls:
                if c.tag == t:
                    return c
        return None


@dataclass(frozen=True)
class Plan:
    """How a model's proposals become results under one labeling config."""

    shape: Control  # the control (or tool) the shapes go under
    text: Control | None = None  # OCR: the per-region TextArea
    labels: Control | None = None  # OCR: a Labels control for the region's class
    label_map: dict[str, str] = field(default_factory=dict)  # model label -> config label


def plan_for(config: LabelingConfig, kind: str, model_labels: tuple[str, ...]) -> Plan:
    """What results MODEL's proposals become in this config; ValidationError (422) naming
    what is missing when it cannot fill it."""
    if kind == "detect":
        shape = config.first(*BOX_CONTROLS)
        if shape is None:
            raise ValidationError("the labeling config has no RectangleLabels or PolygonLabels "
                                  f"for <Image name={config.image!r}>: a detector's boxes "
                                  "have nowhere to go")
        by_lower = {n.lower(): n for n in shape.labels}
        mapping = {m: by_lower[m.lower()] for m in model_labels if m.lower() in by_lower}
        if not mapping:
            raise ValidationError(f"none of the model's classes is a label of {shape.name!r} "
                                  f"({', '.join(shape.labels) or 'none'})",
                                  hint="name the config's labels as the model's classes")
        return Plan(shape, label_map=mapping)
    if kind == "ocr":
        shape = config.first(*SHAPE_TOOLS)
        text = next((c for c in config.controls if c.tag == "textarea"), None)
        if shape is None or text is None:
            raise ValidationError("an OCR model needs a Polygon or Rectangle tool and a "
                                  "per-region TextArea on the image in the labeling config",
                                  hint="use Label Studio's OCR template")
        labels = config.first("labels")
        named = [c for c in (shape, labels) if c is not None and c.labels]
        # every line is text: the class is the config's first label where it asks for one
        return Plan(shape, text, labels,
                    {m: named[-1].labels[0] for m in model_labels} if named else {})
    if kind == "segment":
        brush = config.first("brushlabels")
        if brush is None or config.first("keypointlabels", "rectanglelabels") is None:
            raise ValidationError("an interactive segmenter needs BrushLabels for its masks and "
                                  "KeyPointLabels (clicks) or RectangleLabels (a box) for the "
                                  "prompts on the image in the labeling config")
        return Plan(brush, label_map={n: n for n in brush.labels})
    raise ValidationError(f"a {kind} model cannot be served to Label Studio yet")


def results_for(plan: Plan, proposals: list[Annotation], w: int, h: int, prefix: str
                ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    labelled = plan.shape.tag.endswith("labels")
    for k, a in enumerate(proposals):
        if labelled and a.label not in plan.label_map:
            continue  # a class the project does not label
        mapped = Annotation(label=plan.label_map.get(a.label, a.label), shape=a.shape,
                            text=a.text, score=a.score, source=a.source, status=a.status)
        rid = f"{prefix}{k}"
        items = ls_results(mapped, rid, w, h, from_name=plan.shape.name,
                           to_name=plan.shape.to_name,
                           text_from=plan.text.name if plan.text else None, labelled=labelled)
        if plan.shape.tag.startswith("polygon") and items[0]["type"].startswith("rectangle"):
            items = _as_polygon(items, labelled)
        if plan.labels is not None and plan.labels.labels:
            tv = {k2: v for k2, v in items[0]["value"].items() if not k2.endswith("labels")}
            items.append({**items[0], "from_name": plan.labels.name, "type": "labels",
                          "value": {**tv, "labels": [mapped.label]}})
        out.extend(items)
    return out


def _as_polygon(items: list[dict[str, Any]], labelled: bool) -> list[dict[str, Any]]:
    """Rectangle results re-expressed as four-point polygons (a config with only
    PolygonLabels)."""
    out = []
    for it in items:
        v = dict(it["value"])
        x, y, w, h = v.pop("x"), v.pop("y"), v.pop("width"), v.pop("height")
        v.pop("rotation", None)
        v["points"] = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        v["closed"] = True
        kind = it["type"]
        if kind.startswith("rectangle"):
            kind = "polygon" + kind[len("rectangle"):]
            if labelled and "rectanglelabels" in v:
                v["polygonlabels"] = v.pop("rectanglelabels")
        out.append({**it, "type": kind, "value": v})
    return out


@dataclass(frozen=True)
class Segmenter:
    model: Any  # an InteractiveSegmenter
    version: str


@dataclass
class Project:
    config: LabelingConfig
    hostname: str | None
    token: str | None


class LabelStudioBackend:
    """The per-project state /setup leaves (configs, where to read images)."""

    def __init__(self, url: str | None, key: str | None) -> None:
        self.url, self.key = url, key  # a fixed Label Studio (else the one /setup names)
        self.projects: dict[str, Project] = {}
        self.lock = threading.Lock()

    def remember(self, project: str, xml: str, hostname: str | None, token: str | None) -> Project:
        p = Project(LabelingConfig.parse(xml), self.url or hostname, self.key or token)
        with self.lock:
            self.projects[project.split(".")[0]] = p
        return p

    def segmenter(self, name: str, models_dir: Any) -> Segmenter | None:
        """The interactive segmenter `name` (loaded once), or None where `name` is not
        one (a pre-labeling model, or no such model: the pool says which)."""
        from labelpilot.models.registry import SEGMENTER_KINDS, get_manifest, load_segmenter

        try:
            manifest = get_manifest(name, models_dir)
        except LabelPilotError:
            return None
        if manifest.kind not in SEGMENTER_KINDS:
            return None
        return Segmenter(load_segmenter(name, models_dir), manifest.version)

    def project(self, project: str | None, xml: str | None) -> Project:
        key = str(project or "").split(".")[0]
        with self.lock:
            known = self.projects.get(key)
        if xml:  # the config sent with the request is the current one
            hostname = known.hostname if known else self.url
            token = known.token if known else self.key
            return Project(LabelingConfig.parse(xml), hostname, token)
        if known is None:
            raise ValidationError("this project has not called /setup and sent no label_config")
        return known


async def fetch_image(url: str, project: Project) -> bytes:
    """The bytes behind a task's image reference: a data: URL, or a path or URL on the
    project's Label Studio host."""
    import httpx

    if url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error, ValueError):
            raise ValidationError("the task's data: URL is not base64") from None
    if not project.hostname:
        raise ValidationError(f"cannot read {url[:200]!r}: no Label Studio address is known",
                              hint="start serve-models with --label-studio-url, or let "
                                   "Label Studio call /setup")
    base = project.hostname.rstrip("/") + "/"
    full = urljoin(base, url)
    if urlparse(full).netloc != urlparse(base).netloc:
        raise ValidationError(f"the image {url[:200]!r} is not on the Label Studio host "
                              f"{project.hostname}; it is not fetched")
    headers = {"Authorization": f"Token {project.token}"} if project.token else {}
    try:
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client, \
                client.stream("GET", full, headers=headers) as r:
            if r.status_code != 200:
                raise ValidationError(f"Label Studio answered {r.status_code} for the image "
                                      f"{url[:200]!r}", hint="check the token it was given")
            data = bytearray()
            async for chunk in r.aiter_bytes():
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise ValidationError(f"the image {url[:200]!r} is over "
                                          f"{MAX_IMAGE_BYTES:,} bytes")
            return bytes(data)
    except httpx.HTTPError as e:
        raise ValidationError(f"could not read the image {url[:200]!r} from Label Studio "
                              f"({type(e).__name__})") from None


def ls_user(request: Request,
            creds: Annotated[HTTPBasicCredentials | None, Depends(basic)],
            token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> UserInfo:
    """The user whose API key Label Studio sends (Basic auth's password, or a bearer)."""
    secret = creds.password if creds is not None else token.credentials if token else None
    if not secret:
        raise AuthError("Label Studio sent no credentials",
                        hint="in the ML backend's settings, turn on basic auth with any user "
                             "name and a key from `labelpilot users add-key` as the password")
    ws: Workspace = request.app.state.workspace
    with ws.engine.connect() as conn:
        return user_for_token(conn, secret)


LsUser = Annotated[UserInfo, Depends(ls_user)]


def router(backend: LabelStudioBackend) -> APIRouter:
    r = APIRouter(prefix="/labelstudio/{model}", tags=["label studio"])

    def served(model: str, request: Request) -> tuple[str, str, tuple[str, ...]]:
        """(kind, version, labels) of a served predictor or an interactive segmenter."""
        segmenter = backend.segmenter(model, request.app.state.workspace.models_dir)
        if segmenter is not None:
            return "segment", segmenter.version, ()
        w = request.app.state.pool.worker(model)
        return w.current.kind, w.current.version, w.current.labels

    @r.get("/health")
    def health(model: str, request: Request) -> dict[str, Any]:
        kind = served(model, request)[0]
        return {"status": "UP", "model_class": f"LabelPilot {kind} model {model}"}

    @r.post("/setup")
    async def setup(model: str, request: Request, user: LsUser) -> dict[str, Any]:
        body = await _json(request)
        kind, version, labels = served(model, request)
        project = backend.remember(str(body.get("project", "")), str(body.get("schema", "")),
                                   body.get("hostname"), body.get("access_token"))
        plan_for(project.config, kind, labels)  # can it fill it?
        return {"model_version": f"{model}@{version}"}

    @r.post("/webhook")
    async def webhook(model: str, request: Request, user: LsUser) -> dict[str, Any]:
        body = await _json(request)
        # annotation events: nothing to train on per event; acknowledged
        return {"status": "ok", "action": body.get("action")}

    @r.post("/predict")
    async def predict(model: str, request: Request, user: LsUser) -> dict[str, Any]:
        body = await _json(request)
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise ValidationError("the body has no 'tasks' list")
        project = backend.project(body.get("project"), body.get("label_config"))
        segmenter = backend.segmenter(model, request.app.state.workspace.models_dir)
        if segmenter is not None:
            params = body.get("params") if isinstance(body.get("params"), dict) else {}
            context = params.get("context") if isinstance(params, dict) else None
            return {"results": [await interactive(segmenter, model, t, project, context)
                                for t in tasks]}
        pool = request.app.state.pool
        worker = pool.worker(model)
        plan = plan_for(project.config, worker.current.kind, worker.current.labels)

        async def one(task: Any) -> dict[str, Any]:
            data = task.get("data", {}) if isinstance(task, dict) else {}
            ref = data.get(project.config.key)
            if not isinstance(ref, str):
                raise ValidationError(f"task {task.get('id') if isinstance(task, dict) else '?'}"
                                      f" has no data.{project.config.key}")
            raw = await fetch_image(ref, project)
            loaded, proposals, _, (w, h) = await worker.ask(
                lambda: decode_bgr(raw, name=ref[:200]))
            result = results_for(plan, proposals, w, h,
                                 f"lp{task.get('id', 'x')}_")
            scores = [a.score for a in proposals if a.score is not None]
            return {"result": result, "score": min(scores) if scores else 0.0,
                    "model_version": f"{loaded.name}@{loaded.version}"}

        results = await asyncio.gather(*(one(t) for t in tasks))
        return {"results": list(results)}

    return r


async def interactive(segmenter: Any, model: str, task: Any, project: Project,
                      context: Any) -> dict[str, Any]:
    """Label Studio's interactive pre-annotation: the clicks (KeyPointLabels; positive
    unless `is_positive` is false) and/or the box (RectangleLabels) the annotator just
    placed, in `context.result`, become one BrushLabels mask of the segmenter's. Without
    a prompt (a batch of tasks) there is nothing to segment: an empty result."""
    from labelpilot.models.base import Click, Prompt

    version = f"{model}@{segmenter.version}"
    items = context.get("result") if isinstance(context, dict) else None
    if not items:
        return {"result": [], "score": 0.0, "model_version": version}
    plan = plan_for(project.config, "segment", ())
    data = task.get("data", {}) if isinstance(task, dict) else {}
    ref = data.get(project.config.key)
    if not isinstance(ref, str):
        raise ValidationError(f"the task has no data.{project.config.key}")
    raw = await fetch_image(ref, project)
    image = await anyio.to_thread.run_sync(lambda: decode_bgr(raw, name=ref[:200]))
    h, w = image.shape[:2]
    clicks, box, label = [], None, None
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("value"), dict):
            continue
        v, kind = it["value"], str(it.get("type", ""))
        try:
            if kind.startswith("keypoint"):
                clicks.append(Click(float(v["x"]) * w / 100, float(v["y"]) * h / 100,
                                    it.get("is_positive", True) is not False))
            elif kind.startswith("rectangle"):
                x, y = float(v["x"]) * w / 100, float(v["y"]) * h / 100
                box = (x, y, x + float(v["width"]) * w / 100, y + float(v["height"]) * h / 100)
            else:
                continue
        except (KeyError, TypeError, ValueError):
            raise ValidationError(f"a {kind} in the context has no usable x/y") from None
        names = v.get(kind) if kind.endswith("labels") else None
        if isinstance(names, list) and names:
            label = str(names[0])
    prompt = Prompt(clicks, box)
    prompt.validate(w, h)
    rgb = np.ascontiguousarray(image[..., ::-1])

    def segment() -> Any:
        return segmenter.model.predict(segmenter.model.embed(rgb), prompt)

    proposals = await anyio.to_thread.run_sync(segment)
    if not proposals:
        return {"result": [], "score": 0.0, "model_version": version}
    best = proposals[0]
    label = label if label in plan.shape.labels else (plan.shape.labels[0]
                                                       if plan.shape.labels else "object")
    mask = Annotation(label=label, shape=Mask.from_array(best.mask),
                      score=best.quality, source=f"model:{version}", status="predicted")
    result = ls_results(mask, f"lp{task.get('id', 'x')}_m", w, h, from_name=plan.shape.name,
                        to_name=plan.shape.to_name, text_from=None)
    return {"result": result, "score": best.quality if best.quality is not None else 0.0,
            "model_version": version}


async def _json(request: Request) -> dict[str, Any]:
    import orjson

    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as e:
        raise ValidationError(f"the body is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise ValidationError("the body is not a JSON object")
    return body

