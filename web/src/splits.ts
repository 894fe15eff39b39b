// Splits from the browser: share every image out by ratio (stratified by class) from the
// overview, or put the images of the grid's current list into one split.

import { api, errorText } from "./api";
import { el, toast } from "./dom";


/** Train / val / test shares in percent, stratified by class unless unticked. */
export function splitsPanel(changed: () => void): HTMLElement {
  const pct = (id: string, value: string) =>
    el("input", { id, type: "number", min: "0", max: "100", step: "1", value, "aria-label": `${id} percent` });
  const train = pct("split-train", "80"), val = pct("split-val", "10"), test = pct("split-test", "10");
  const stratify = el("input", { type: "checkbox", id: "split-stratify", checked: "" });
  const unassigned = el("input", { type: "checkbox", id: "split-unassigned" });
  const result = el("p", { id: "split-result", class: "summary" });
  const go = el("button", { id: "assign-splits" }, "Assign splits");
  go.onclick = async () => {
    go.disabled = true;
    try {
      const r = await api.assignSplits({
        ratios: { train: Number(train.value), val: Number(val.value), test: Number(test.value) },
        stratify: stratify.checked, only_unassigned: unassigned.checked });
      const text = `Splits assigned to ${r.assigned} images: ` +
        Object.entries(r.by_split).map(([k, v]) => `${k} ${v}`).join(", ") + ".";
      result.textContent = text;
      toast(text);
      changed();  // the overview's counts are read again
    } catch (e) {
      toast(errorText(e), "error");
    } finally {
      go.disabled = false;
    }
  };
  return el("div", { class: "panel", id: "splits-panel" }, el("h3", {}, "Splits"),
    el("div", { class: "row" }, "train %", train, "val %", val, "test %", test),
    el("div", { class: "row" }, el("label", {}, stratify, " every split sees every class"),
      el("label", {}, unassigned, " only images without a split"), go), result);
}

/** "Put these N images in [split]": the grid's list (its filters) as the selection. */
export function listToSplit(ids: () => number[], done: () => void): HTMLElement {
  const split = el("select", { id: "list-split", "aria-label": "split for these images" },
    ...["train", "val", "test", "unassigned"].map((s) => el("option", { value: s }, s)));
  const go = el("button", { id: "list-to-split" }, "Put these images in");
  go.onclick = async () => {
    const chosen = ids();
    if (!chosen.length) return void toast("No image in this list.");
    try {
      const r = await api.assignSplits({ split: split.value, image_ids: chosen });
      toast(`${r.assigned} images now in ${split.value}.`);
      done();
    } catch (e) {
      toast(errorText(e), "error");
    }
  };
  return el("span", { class: "list-split" }, go, split);
}
