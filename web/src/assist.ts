// The model side of the UI: pre-labeling (with a detector's class map), training a custom
// model on the reviewed labels, the jobs list, and the models page with what each measured.

import { Job, Me, ModelInfo, Project, TrainOptions, api, errorText } from "./api";
import { el, toast } from "./dom";
import { executorChoice, executorOf } from "./executor";
import { exportResult, importResult } from "./transfer";
import { curveSvg } from "./curve";


const fmt = (v: unknown) => (typeof v === "number" ? v.toFixed(3) : String(v ?? ""));

// --- pre-labeling --------------------------------------------------------------------

/** The models that fit the project: its task, or any interactive segmenter for a
 * segmentation project (those propose masks for whole images). */
function fits(project: Project, m: ModelInfo): boolean {
  return project.task === "segment" ? m.interactive : m.task === project.task;
}

/** A detector's classes onto the project's labels, one row per project label (like CVAT's
 * automatic-annotation dialog): the same-named class is preselected; "none" drops it. */
function classMapTable(project: Project, model: ModelInfo): {
  root: HTMLElement; map: () => Record<string, string>; addOthers: () => boolean;
} {
  const rows: [string, HTMLSelectElement][] = project.labels.map((label) => {
    const sel = el("select", { "data-label": label, "aria-label": `model class for ${label}` },
      el("option", { value: "" }, "— none —"),
      ...model.classes.map((c) => el("option", { value: c }, c)));
    sel.value = model.classes.includes(label) ? label : "";
    return [label, sel];
  });
  const add = el("input", { type: "checkbox", id: "add-unmapped" });
  if (!project.labels.length) add.checked = true;
  const table = el("table", { class: "class-map" },
    el("tr", {}, el("th", {}, "project label"), el("th", {}, `${model.name} class`)),
    ...rows.map(([label, sel]) => el("tr", {}, el("td", {}, label), el("td", {}, sel))));
  const root = el("div", { id: "class-map" }, table,
    el("label", {}, add, " add the model's other classes as new labels"));
  return {
    root,
    map: () => {
      const out: Record<string, string> = {};
      for (const [label, sel] of rows) if (sel.value) out[sel.value] = label;
      // a same-named class the user did not pick for its label is dropped, not matched
      for (const [label] of rows) {
        if (model.classes.includes(label) && !(label in out)) out[label] = "";
      }
      return out;
    },
    addOthers: () => add.checked,
  };
}

export function prelabelPanel(project: Project, started: () => void): {
  root: HTMLElement; refresh: () => Promise<void>;
} {
  const select = el("select", { id: "prelabel-model", "aria-label": "pre-labeling model" });
  const which = el("select", { id: "prelabel-images", "aria-label": "images to pre-label" },
    el("option", { value: "new" }, "new images"), el("option", { value: "all" }, "all images not done"));
  const button = el("button", { id: "prelabel" }, "Pre-label");
  const where = executorChoice(project, "prelabel-executor");
  const why = el("span", { id: "prelabel-reason", class: "hint" });
  // whether there is anything to pre-label: said next to the button, before a job starts
  const check = async () => {
    try {
      const r = await api.autolabelCheck(which.value);
      button.disabled = !r.ready;
      why.textContent = r.ready ? `${r.images} image${r.images === 1 ? "" : "s"}` : r.reason ?? "";
    } catch {
      why.textContent = "";
    }
  };
  which.onchange = () => void check();
  const mapBox = el("div", {});
  // OCR: find the lines, or read each image whole (crops of one line, as rec data sets)
  const lines = el("select", { id: "prelabel-lines", "aria-label": "how text lines are found" },
    el("option", { value: "detect" }, "find the text lines"),
    el("option", { value: "whole-image" }, "each image is one line"));
  lines.value = project.text_lines ?? "detect";
  let models: ModelInfo[] = [];
  let table: ReturnType<typeof classMapTable> | null = null;

  const showMap = () => {
    const m = models.find((x) => x.name === select.value);
    table = m && m.task === "detect" && m.classes.length ? classMapTable(project, m) : null;
    mapBox.replaceChildren(...(table ? [table.root] : []));
    lines.hidden = !(m ? m.task === "ocr" : project.task === "ocr");
  };
  select.onchange = showMap;
  const refresh = async () => {
    const keep = select.value;
    models = (await api.models()).filter((m) => fits(project, m));
    select.replaceChildren(...models.map((m) => el("option", { value: m.name },
      (m.builtin ? m.name : `${m.name} (v${m.version})`) +
      (m.name === project.prelabeler ? " · pre-labeler" : ""))));
    // the project's pre-labeler first chosen (the closed loop promotes its models there)
    const preferred = keep || project.prelabeler || "";
    if (models.some((m) => m.name === preferred)) select.value = preferred;
    showMap();
  };
  button.onclick = async () => {
    try {
      await api.autolabel({
        model: select.value || "ocr", images: which.value as "new" | "all",
        map: table ? table.map() : null,
        unmapped: table ? (table.addOthers() ? "add" : "drop") : null,
        lines: lines.hidden ? null : lines.value as "detect" | "whole-image",
        executor: executorOf(where),
      });
      toast("pre-labeling started");
    } catch (e) {
      toast(errorText(e), "error");
    }
    started();
  };
  const root = el("section", { class: "panel", id: "prelabel-panel" },
    el("h3", {}, "Pre-label"), el("div", { class: "row" }, select, lines, which,
      ...(where ? [where] : []), button, why), mapBox);
  refresh().catch(() => undefined);
  void check();
  return { root, refresh: async () => { await refresh(); await check(); } };
}

// --- training ------------------------------------------------------------------------

const TRAIN_TASK: Record<string, TrainOptions["task"]> = { detect: "detect", ocr: "ocr-rec" };

/** Admins: fine-tune on the accepted labels of the train split (custom auto-label). */
export function trainPanel(project: Project, started: () => void): HTMLElement | null {
  const task = TRAIN_TASK[project.task];
  if (!task) return null;
  const init = el("select", { id: "train-init", "aria-label": "start from" },
    el("option", { value: "pretrained" }, "from the pretrained model"),
    el("option", { value: "scratch" }, "from scratch"));
  const minutes = el("input", { id: "train-minutes", type: "number", min: "0.1", step: "any",
    value: task === "detect" ? "5" : "10", "aria-label": "minutes" });
  const name = el("input", { id: "train-name", value: `custom-${project.task}`,
    pattern: "[A-Za-z0-9_.\\-]{1,64}", "aria-label": "model name" });
  // a detector starts from one of the installed detectors with a YOLOX head
  const base = el("select", { id: "train-base", "aria-label": "base model" });
  if (task === "detect") {
    api.models().then((models) => {
      const bases = models.filter((m) => m.trainable);
      base.replaceChildren(...bases.map((m) => el("option", { value: m.name },
        `from ${m.name}`)));
      // several bases: each trained for the whole budget, the best on held-out images kept
      if (bases.length > 1) {
        base.append(el("option", { value: bases.map((m) => m.name).join(",") },
          `compare ${bases.map((m) => m.name).join(", ")} (each for the time given)`));
      }
      if (bases.some((m) => m.name === "yolox-nano")) base.value = "yolox-nano";
    }).catch(() => undefined);
  }
  // large images with small objects: learn (and later pre-label) in tiles; empty: whole
  const tile = el("input", { id: "train-tile", size: "10", placeholder: "whole images",
    "aria-label": "tile size (px, or auto)",
    title: "Large images with small objects: train (and pre-label) in overlapping tiles " +
      "of this many pixels, or 'auto' to choose from the boxes' sizes; leave empty to use " +
      "whole images" });
  const button = el("button", { id: "train" }, "Train");
  const why = el("p", { id: "train-reason", class: "hint" });
  const warned = el("ul", { id: "train-warnings", class: "hint" });
  // nothing to learn from, or too little: said next to the button, before a job starts
  api.trainCheck(task).then((r) => {
    button.disabled = !r.ready;
    why.textContent = r.reason ?? "";
    warned.replaceChildren(...(r.warnings ?? []).map((w) => el("li", {}, w)));
  }).catch(() => undefined);
  button.onclick = async () => {
    const m = Number(minutes.value);
    if (!(m > 0)) {
      toast("minutes must be a number above 0", "error");
      return;
    }
    const given = tile.value.trim().toLowerCase();
    const t = given === "" ? null : given === "auto" ? "auto" : Number(given);
    if (t !== null && t !== "auto" && !(Number.isInteger(t) && t >= 64)) {
      toast("a tile is a whole number of pixels, 64 or more, or auto (or empty: whole " +
        "images)", "error");
      return;
    }
    try {
      await api.train({ task, init: init.value as TrainOptions["init"], minutes: m,
        name: name.value.trim() || null, base: task === "detect" ? base.value || null : null,
        tile: task === "detect" ? t : null });
      toast("training started");
    } catch (e) {
      toast(errorText(e), "error");
    }
    started();
  };
  return el("section", { class: "panel", id: "train-panel" },
    el("h3", {}, "Train on the reviewed labels (train split)"),
    el("div", { class: "row" }, ...(task === "detect" ? [base] : []), init, minutes,
      el("span", {}, "min"), name, ...(task === "detect" ? [tile, el("span", {}, "px tiles")] : []),
      button), why, warned,
    el("p", { class: "hint" }, "The model is checked on the val split (or a held-out part " +
      "of train), scored on the test split, and then offered for pre-labeling."));
}

// --- jobs ----------------------------------------------------------------------------

/** One line on what a finished job did. */
export function jobSummary(j: Job): string {
  if (j.status === "failed") return j.error ?? "failed";
  const r = j.result;
  if (j.status !== "done" || !r) return "";
  if (j.kind === "train-detect") {
    const t = r.test;
    const tiles = r.tiling ? ` (trained on ${r.tiling.train_tiles} tiles of ${r.tiling.tile} px)` : "";
    return (t ? `model ${r.model}: test mAP50 ${fmt(t.map50)}, accept rate ${fmt(t.accept_rate)}`
      : `model ${r.model}: val mAP50 ${fmt(r.val_map50)}`) + tiles;
  }
  if (j.kind === "optimize") {
    return `${r.model}: ${r.kept ? "INT8 variant kept" : "no variant kept"} (${gateReasons(r)})`;
  }
  if (j.kind === "train-ocr-rec") {
    return `model ${r.model}: val accuracy ${fmt(r.val_accuracy)}, CER ${fmt(r.val_cer)}`;
  }
  if (j.kind === "import") return importResult(j);
  if (j.kind === "select") {
    return `${r.selected.length} of ${r.pool} images first in the queue (${r.strategy}` +
      `${r.model ? `, ${r.model}` : ""})`;
  }
  if ("added" in r) return `added ${r.added}, replaced ${r.replaced ?? 0}`;
  return "";
}

const ACTIVE = ["queued", "running"];

function jobRow(j: Job, refresh: () => void): HTMLElement {
  const pct = j.total ? Math.round((100 * j.done) / j.total) : 0;
  // asked to stop, not stopped yet: the job finishes its step first
  const cancelling = ACTIVE.includes(j.status) && j.cancel_requested;
  const status = cancelling ? "cancelling…" : j.status;
  const row = el("div", { class: `job ${cancelling ? "cancelling" : j.status}`, "data-kind": j.kind,
    "data-id": String(j.id) },
    el("span", {}, `#${j.id} ${j.kind}: ${status} ${j.done}/${j.total}`),
    el("progress", { max: "100", value: String(pct) }),
    el("span", {}, j.eta_s !== null ? ` ETA ${Math.round(j.eta_s)} s` : ""),
    ...(j.kind === "export" && j.status === "done" ? exportResult(j)
      : [el("span", { class: "summary" }, jobSummary(j))]),
    ...(j.status === "failed" && j.error ? [el("span", { class: "error job-error" }, j.error)] : []));
  if (ACTIVE.includes(j.status) && !cancelling) {
    const cancel = el("button", { class: "cancel-job" }, "Cancel");
    cancel.onclick = async () => {
      cancel.disabled = true;
      await api.cancel(j.id);
      refresh();
    };
    row.append(cancel);
  }
  return row;
}

/** The latest jobs. Each queued or running one is followed over its Server-Sent Events
 * route (no polling); `finished` is called when a followed job ends. `refresh` reads the
 * list again (after starting a job). */
export function jobsList(finished: (j: Job) => void): { root: HTMLElement; refresh: () => void } {
  const root = el("div", { class: "jobs", id: "jobs" });
  const streams = new Map<number, EventSource>();
  let jobs: Job[] = [];
  const render = () => root.replaceChildren(...jobs.slice(0, 10).map((j) => jobRow(j, refresh)));
  const stop = (id: number) => {
    streams.get(id)?.close();
    streams.delete(id);
  };
  const follow = (j: Job) => {
    if (streams.has(j.id) || !ACTIVE.includes(j.status)) return;
    const source = new EventSource(`/api/jobs/${j.id}/events`);
    streams.set(j.id, source);
    source.addEventListener("progress", (ev) => {
      if (!document.body.contains(root)) return stop(j.id); // the view is gone
      const now = JSON.parse((ev as MessageEvent).data) as Job;
      jobs = jobs.map((x) => (x.id === now.id ? now : x));
      render();
      if (!ACTIVE.includes(now.status)) {
        stop(j.id);
        finished(now);
      }
    });
    // the stream broke before the job ended (a restart, the network): read the list again
    source.onerror = () => {
      stop(j.id);
      window.setTimeout(() => document.body.contains(root) && refresh(), 2000);
    };
  };
  async function refresh(): Promise<void> {
    try {
      jobs = await api.jobs();
    } catch {
      return;
    }
    render();
    jobs.forEach(follow);
  }
  refresh();
  return { root, refresh: () => void refresh() };
}

// --- models page ---------------------------------------------------------------------

function perClassTable(perClass: Record<string, any>): HTMLElement {
  return el("table", { class: "per-class" },
    el("tr", {}, ...["class", "AP50", "AP50:95", "instances"].map((h) => el("th", {}, h))),
    ...Object.entries(perClass).map(([c, v]) => el("tr", {}, el("td", {}, c),
      el("td", {}, fmt(v.ap50)), el("td", {}, fmt(v.ap50_95)), el("td", {}, String(v.instances)))));
}

function metricsBlock(metrics: Record<string, any>): HTMLElement {
  const box = el("div", { class: "metrics" });
  const test = metrics.test;
  if (test && typeof test === "object") {
    box.append(el("p", {}, `test split (${test.images} images): mAP50 ${fmt(test.map50)}, ` +
      `mAP50:95 ${fmt(test.map50_95)}, accept rate ${fmt(test.accept_rate)}, ` +
      `precision of the proposals shown ${fmt(test.precision)}`));
    if (test.per_class) box.append(perClassTable(test.per_class));
    const compared: any[] = metrics.bases ?? [];
    if (compared.length > 1) {
      box.append(el("p", { class: "hint" }, `base models compared (${compared[0].base} kept: ` +
        "the best on the held-out images)"),
        el("table", { class: "bases" }, el("tr", {}, ...["base", "held-out mAP50", "steps",
          "ms/image", "test mAP50", "test accept rate"].map((h) => el("th", {}, h))),
          ...compared.map((b) => el("tr", {}, el("td", {}, b.base), el("td", {}, fmt(b.val_map50)),
            el("td", {}, String(b.steps)), el("td", {}, b.ms_per_image == null ? "" :
              String(Math.round(b.ms_per_image))), el("td", {}, fmt(b.test_map50)),
            el("td", {}, fmt(b.test_accept_rate))))));
    }
    const th = metrics.thresholds;
    if (th && typeof th === "object") {
      const own = Object.entries(th.class_thresholds ?? {}).map(([c, v]) => `, ${c} ${fmt(v)}`);
      box.append(el("p", { class: "thresholds" }, `display thresholds chosen on ${th.images} ` +
        `held-out images: ${fmt(th.score_threshold)}${own.join("")}`));
    }
    // the test images where the proposals need the most fixing, linked to the editor
    const examples: any[] = test.examples ?? [];
    if (examples.length) {
      box.append(el("p", { class: "hint" }, "Most to fix (misses and false alarms at IoU 0.5):"),
        el("ul", { class: "mistakes" }, ...examples.map((e) => {
          const what = [e.misses.length ? `missed ${e.misses.map((m: any) => m.label).join(", ")}` : "",
            e.false_alarms.length ? `false alarm${e.false_alarms.length > 1 ? "s" : ""} ` +
              e.false_alarms.map((f: any) => `${f.label} ${fmt(f.score)}`).join(", ") : ""]
            .filter(Boolean).join("; ");
          return el("li", { "data-image": String(e.image_id) },
            el("a", { href: `#/label/${e.image_id}` }, e.file_name), ` — ${what}`);
        })));
    }
  }
  const scalars = Object.entries(metrics).filter(([, v]) => typeof v === "number" || typeof v === "string");
  if (scalars.length) {
    box.append(el("p", { class: "hint" }, scalars.map(([k, v]) => `${k} ${fmt(v)}`).join(" · ")));
  }
  return box;
}

/** What the optimization gate said of each try, in order. */
function gateReasons(result: Record<string, any> | null): string {
  const tries: any[] = result?.tries ?? [];
  return tries.map((t) => t.reason).join("; then ");
}

/** A model's optimized variants (what the gate measured), and for admins the button that
 * makes an INT8 one as a job whose outcome (kept, or refused and why) is said here. */
function variantsBlock(m: ModelInfo, admin: boolean): HTMLElement {
  const box = el("div", { class: "variants" });
  for (const [name, v] of Object.entries(m.variants ?? {})) {
    box.append(el("p", { class: "variant", "data-variant": name },
      `${name} (${v.quantized ?? ""}): ${Number(v.speedup).toFixed(2)}x faster (${fmt(v.fp32_ms_per_image)} → ` +
      `${fmt(v.ms_per_image)} ms an image), ${v.metric.name} ${fmt(v.metric.fp32)} → ` +
      `${fmt(v.metric.value)} on ${v.metric.images} ${v.metric.split} images, ` +
      `${(v.size_bytes / 1e6).toFixed(1)} MB; calibrated on ${v.calibration.images} ` +
      `${v.calibration.split} images`));
  }
  if (admin && ((!m.builtin && m.kind === "detect") || m.kind === "ocr")) {
    const button = el("button", { class: "optimize" }, "Optimize (INT8)");
    const said = el("span", { class: "optimize-result hint" });
    button.onclick = async () => {
      button.disabled = true;
      said.textContent = "quantizing and measuring…";
      try {
        let job = await api.optimize(m.name);
        while (job.status === "queued" || job.status === "running") {
          await new Promise((r) => setTimeout(r, 500));
          job = await api.job(job.id);
        }
        if (job.status !== "done") said.textContent = `failed: ${job.error ?? job.status}`;
        else said.textContent = (job.result?.kept ? "kept: " : "refused: ") + gateReasons(job.result);
      } catch (e) {
        said.textContent = errorText(e);
      }
      button.disabled = false;
    };
    box.append(button, said);
  }
  return box;
}

export async function modelsView(head: HTMLElement, me: Me | null = null): Promise<HTMLElement> {
  const models = await api.models();
  const rows = models.map((m) => {
    const what = el("td", {}, m.description, metricsBlock(m.metrics),
      variantsBlock(m, me?.role === "admin"));
    // a model trained here: its learning curve
    if (!m.builtin && m.metrics.steps) {
      void api.history(m.name).then((points) => {
        if (points.length) what.append(curveSvg(points));
      }).catch(() => undefined);
    }
    return el("tr", { "data-model": m.name },
      el("td", {}, m.name), el("td", {}, `${m.task} / ${m.kind}`), el("td", {}, m.version),
      el("td", {}, m.builtin ? "built in" : "installed"), what);
  });
  return el("div", { class: "page" }, head, el("main", { class: "overview" },
    el("h2", {}, `${models.length} models`),
    el("table", { class: "models" },
      el("tr", {}, ...["name", "task / kind", "version", "", "what it is, what it measured"]
        .map((h) => el("th", {}, h))), ...rows)));
}
