// Getting data in and out from the browser: image upload (drag and drop, files, a whole
// folder) on the Images page, and the export panel on the overview (a job with a download).

import { Job, api, errorText } from "./api";
import { el, toast } from "./dom";


// --- export --------------------------------------------------------------------------

/** Format, labels (accepted / with proposals), split, with or without images: an export
 * job; its row in the jobs list gets the download link when it is done. */
export function exportPanel(started: () => void): HTMLElement {
  const format = el("select", { id: "export-format", "aria-label": "export format" });
  api.formats().then((fs) => {
    for (const f of fs) format.append(el("option", { value: f.name, title: f.description }, f.name));
    format.value = fs.some((f) => f.name === "coco") ? "coco" : fs[0]?.name ?? "";
  }).catch((e) => toast(errorText(e), "error"));
  const status = el("select", { id: "export-status", "aria-label": "labels to export" },
    el("option", { value: "accepted" }, "accepted and edited labels"),
    el("option", { value: "all" }, "with the models' proposals"));
  const split = el("select", { id: "export-split", "aria-label": "split to export" },
    el("option", { value: "" }, "every split"),
    ...["train", "val", "test"].map((s) => el("option", { value: s }, s)));
  const images = el("input", { type: "checkbox", id: "export-images", checked: "" });
  const go = el("button", { id: "export" }, "Export");
  go.onclick = async () => {
    go.disabled = true;
    try {
      await api.exportLabels({ format: format.value, status: status.value,
        split: split.value || null, include_images: images.checked });
      started();
    } catch (e) {
      toast(errorText(e), "error");
    } finally {
      go.disabled = false;
    }
  };
  return el("div", { class: "panel", id: "export-panel" }, el("h3", {}, "Export"),
    el("div", { class: "row" }, format, status, split,
      el("label", {}, images, " images"), go));
}

/** What a finished export wrote, and where to download it. */
export function exportResult(j: Job): HTMLElement[] {
  const r = j.result ?? {};
  const left = Object.entries((r.left_out ?? {}) as Record<string, number>)
    .map(([why, n]) => `${n} left out: ${why}`);
  return [el("span", { class: "summary" },
    `${r.format}: ${r.images} images, ${r.annotations} annotations` +
    (left.length ? ` (${left.join("; ")})` : "")),
  el("a", { class: "download", href: `/api/exports/${j.id}/download`, download: "" }, "Download")];
}

// --- import --------------------------------------------------------------------------

/** An archive of images and label files (a dataset folder zipped), imported as a job
 * with the CLI's checks; its row says what came in and what was skipped. */
export function importPanel(started: () => void): HTMLElement {
  const file = el("input", { type: "file", id: "import-file", accept: ".zip,.tar,.tar.gz,.tgz" });
  const format = el("select", { id: "import-format", "aria-label": "label format" });
  api.formats().then((fs) => {
    for (const f of fs) format.append(el("option", { value: f.name, title: f.description }, f.name));
  }).catch((e) => toast(errorText(e), "error"));
  const split = el("select", { id: "import-split", "aria-label": "split for the images" },
    el("option", { value: "" }, "split from the files"),
    ...["train", "val", "test"].map((s) => el("option", { value: s }, s)));
  const skip = el("input", { type: "checkbox", id: "import-skip-invalid" });
  const status = el("span", { id: "import-status", role: "status" });
  const go = el("button", { id: "import" }, "Import");
  go.onclick = async () => {
    const f = file.files?.[0];
    if (!f) return void toast("Choose an archive (.zip, .tar, .tar.gz) first.");
    go.disabled = true;
    status.textContent = "uploading…";
    try {
      await api.importArchive(f, format.value, split.value, skip.checked);
      status.textContent = "";
      file.value = "";
      started();
    } catch (e) {
      status.textContent = "";
      toast(errorText(e), "error");
    } finally {
      go.disabled = false;
    }
  };
  return el("div", { class: "panel", id: "import-panel" }, el("h3", {}, "Import labels"),
    el("div", { class: "row" }, file, format, split),
    el("div", { class: "row" }, el("label", {}, skip, " import the rest past bad images"), go, status));
}

/** What an import brought in, and what it skipped. */
export function importResult(j: Job): string {
  const r = j.result ?? {};
  const warnings = (r.warnings ?? []) as string[];
  return `${r.source}: ${r.images_added} images added (${r.images_already_present} already there), ` +
    `${r.annotations_added} annotations` + (warnings.length ? `; ${warnings.join("; ")}` : "");
}

// --- upload --------------------------------------------------------------------------

const IMAGE_TYPES = /\.(jpe?g|png|bmp|tiff?|webp)$/i;

/** Drop images (or a folder) on the grid, or pick them: each is uploaded, and the line
 * below says how many came in, were there already, or were refused and why. */
export function uploadZone(done: () => void): HTMLElement {
  const status = el("span", { id: "upload-status", role: "status" });
  const files = el("input", { type: "file", id: "upload-files", multiple: "", accept: "image/*" });
  const folder = el("input", { type: "file", id: "upload-folder", webkitdirectory: "" });
  const zone = el("div", { class: "upload", id: "upload" },
    el("label", {}, "Upload images ", files), el("label", {}, "or a folder ", folder),
    el("span", { class: "hint" }, " — or drop them here"), status);
  const run = async (list: File[]) => {
    const images = list.filter((f) => IMAGE_TYPES.test(f.name));
    const skipped = list.length - images.length;
    let added = 0, present = 0;
    const refused: string[] = [];
    for (const [i, f] of images.entries()) {
      status.textContent = `uploading ${i + 1} of ${images.length}…`;
      try {
        const r = await api.upload(f);
        if (r.created) added++;
        else present++;
      } catch (e) {
        refused.push(`${f.name}: ${errorText(e)}`);
      }
    }
    status.textContent = `${added} added, ${present} already there` +
      (refused.length ? `, ${refused.length} refused` : "") +
      (skipped ? `, ${skipped} not images (skipped)` : "");
    for (const r of refused.slice(0, 5)) status.append(el("br"), r);
    if (refused.length > 5) status.append(el("br"), `… and ${refused.length - 5} more`);
    done();
  };
  files.onchange = () => void run([...(files.files ?? [])]);
  folder.onchange = () => void run([...(folder.files ?? [])]);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    void run([...(e.dataTransfer?.files ?? [])]);
  });
  return zone;
}
