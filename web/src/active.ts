// Active learning: choose what to label next. The chosen images lead the labeling queue
// ("Start labeling") and the grid's default order, each with the reason the editor shows.

import { Project, SelectOptions, api, errorText } from "./api";
import { el, toast } from "./dom";
import { executorChoice, executorOf } from "./executor";

const STRATEGIES: [SelectOptions["strategy"], string][] = [
  ["hybrid", "hybrid: uncertain and unlike each other"],
  ["uncertainty", "uncertainty: where the model is least sure"],
  ["diversity", "diversity: unlike what is labeled"],
  ["random", "random"],
];

/** Reviewers: a strategy, a budget and the scoring model; the selection runs as a job. */
export function selectPanel(project: Project, started: () => void): {
  root: HTMLElement; refresh: () => Promise<void>;
} {
  // segmenters give no image embeddings: no spreading out (diversity, hybrid) for them
  const seg = project.task === "segment";
  const strategy = el("select", { id: "select-strategy", "aria-label": "selection strategy" },
    ...STRATEGIES.filter(([v]) => !seg || v === "uncertainty" || v === "random")
      .map(([v, label]) => el("option", { value: v }, label)));
  const budget = el("input", { id: "select-budget", type: "number", min: "1", step: "1",
    value: "20", "aria-label": "images to choose" });
  const model = el("select", { id: "select-model", "aria-label": "scoring model" });
  const where = executorChoice(project, "select-executor");
  const button = el("button", { id: "select" }, "Choose");
  const why = el("span", { id: "select-reason", class: "hint" });
  const refresh = async () => {
    const keep = model.value;
    const models = (await api.models()).filter((m) => m.task === project.task &&
      (seg ? m.interactive : !m.interactive));
    model.replaceChildren(...models.map((m) => el("option", { value: m.name },
      m.builtin ? m.name : `${m.name} (v${m.version})`)));
    if (models.some((m) => m.name === keep)) model.value = keep;
    try {
      const r = await api.selectCheck();
      button.disabled = !r.ready;
      why.textContent = r.ready ? `from ${r.images} image${r.images === 1 ? "" : "s"} nobody has reviewed` : r.reason ?? "";
    } catch {
      why.textContent = "";
    }
  };
  button.onclick = async () => {
    try {
      const s = strategy.value as SelectOptions["strategy"];
      await api.select({ strategy: s, budget: Number(budget.value), model: s === "random" ? null : model.value || null,
        executor: executorOf(where) });
      toast("choosing what to label next");
    } catch (e) {
      toast(errorText(e), "error");
    }
    started();
  };
  const root = el("section", { class: "panel", id: "select-panel" },
    el("h3", {}, "Choose what to label next"),
    el("div", { class: "row" }, strategy, budget, model, ...(where ? [where] : []), button, why),
    el("p", { class: "hint" }, "The chosen images come first in “Start labeling” and in the " +
      "image grid, each with the reason it was chosen."));
  void refresh().catch(() => undefined);
  return { root, refresh };
}

/** Admins: the closed loop. After every N newly accepted labels in the train split a
 * training starts from the pre-labeler; a better model on the test split replaces it. */
export function loopPanel(project: Project): HTMLElement | null {
  if (project.task !== "ocr" && project.task !== "detect") return null;
  const loop = project.loop ?? { enabled: false, every: 50, minutes: 5 };
  const enabled = el("input", { id: "loop-enabled", type: "checkbox" });
  enabled.checked = loop.enabled;
  const every = el("input", { id: "loop-every", type: "number", min: "1", step: "1",
    value: String(loop.every), "aria-label": "labels between trainings" });
  const minutes = el("input", { id: "loop-minutes", type: "number", min: "0.1", step: "any",
    value: String(loop.minutes), "aria-label": "minutes per training" });
  const save = el("button", { id: "loop-save" }, "Save");
  const state = el("p", { id: "loop-state", class: "hint" });
  // OCR: how the project's pre-labeling (the loop's too) finds text lines
  const lines = el("select", { id: "project-text-lines", "aria-label": "text lines" },
    el("option", { value: "detect" }, "found by the text detector"),
    el("option", { value: "whole-image" }, "whole images (each image is one cropped line)"));
  lines.value = project.text_lines ?? "detect";
  const show = (p: Project) => {
    state.textContent = `Pre-labeler now: ${p.prelabeler ?? "none chosen"}.` +
      (p.loop?.enabled ? ` Training after every ${p.loop.every} accepted labels.` : " The loop is off.") +
      (p.task === "ocr" ? ` Text lines: ${p.text_lines === "whole-image" ? "whole images" : "detected"}.` : "");
  };
  show(project);
  save.onclick = async () => {
    try {
      const p = await api.setLoop({ enabled: enabled.checked, every: Number(every.value),
        minutes: Number(minutes.value) },
      project.task === "ocr" ? lines.value as "detect" | "whole-image" : undefined);
      show(p);
      toast(p.loop?.enabled ? "closed loop on" : "closed loop off");
    } catch (e) {
      toast(errorText(e), "error");
    }
  };
  return el("section", { class: "panel", id: "loop-panel" },
    el("h3", {}, "Closed loop"),
    el("div", { class: "row" }, el("label", {}, enabled, " train after every "), every,
      el("span", {}, "accepted labels, for"), minutes, el("span", {}, "min"), save),
    ...(project.task === "ocr" ? [el("div", { class: "row" },
      el("label", { for: "project-text-lines" }, "Pre-labeling reads text lines "), lines)] : []),
    state,
    el("p", { class: "hint" }, "Each training starts from the pre-labeler; when the new " +
      "model scores higher on the test split it becomes the pre-labeler, the images nobody " +
      "has reviewed are pre-labeled again and the last selection is run again."));
}
