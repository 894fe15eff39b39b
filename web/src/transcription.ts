// Transcriptions in the editor: the text field edits the selected line; what is typed is
// kept as a draft until saved (a reload does not lose it); a new text line is read by the
// OCR model at once.

import { Annotation, errorText } from "./api";
import { toast } from "./dom";
import type { Editor } from "./editor";
import { readLine } from "./recognize";

function draftKey(imageId: number, annotationId: number): string {
  return `labelpilot.draft.${imageId}.${annotationId}`;
}

/** Transcriptions typed on this image and not saved (the page was left mid-word): saved
 * now, and said so. */
export async function restoreDrafts(ed: Editor): Promise<void> {
  const prefix = `labelpilot.draft.${ed.imageId}.`;
  const keys = Object.keys(localStorage).filter((k) => k.startsWith(prefix));
  let restored = 0;
  for (const key of keys) {
    const a = ed.doc.byId(Number(key.slice(prefix.length)));
    const draft = localStorage.getItem(key);
    if (a && draft !== null && draft !== (a.text ?? "")) {
      await ed.doc.update(a.id, { text: draft });
      restored++;
    }
    localStorage.removeItem(key);
  }
  if (restored) toast(`Restored ${restored} transcription${restored > 1 ? "s" : ""} typed before the page was left.`);
}

/** The transcription and class fields edit the selected annotation. */
export function wireFields(ed: Editor): void {
  const { text, labels } = ed;
  text.addEventListener("keydown", (e) => {
    e.stopPropagation();
    if (e.key === "Enter" || e.key === "Escape") {
      // Enter keeps the edit (leaving the field fires one `change`, which saves it);
      // Escape puts the old text back first, so nothing changes.
      if (e.key === "Escape") text.value = ed.selected()?.text ?? "";
      text.blur();
      ed.canvas.canvas.focus();
    }
  });
  // what is typed is kept as a draft until saved: a reload or a crash does not lose it
  text.addEventListener("input", () => {
    const sel = ed.selected();
    if (sel) localStorage.setItem(draftKey(ed.imageId, sel.id), text.value);
  });
  text.addEventListener("change", () => {
    const sel = ed.selected();
    if (!sel) return;
    if (text.value !== (sel.text ?? "")) void ed.doc.update(sel.id, { text: text.value });
    void ed.doc.idle().then(() => localStorage.removeItem(draftKey(ed.imageId, sel.id)));
  });
  // the class of every picked shape
  labels.onchange = () => {
    const label = labels.value;  // read once: each save re-draws the panel
    for (const a of ed.canvas.pickedAnnotations()) {
      if (a.label !== label && !ed.canvas.isLocked(a)) void ed.doc.update(a.id, { label });
    }
  };
}

export async function readNewLine(ed: Editor, a: Annotation): Promise<void> {
  const t0 = performance.now();
  try {
    const r = await readLine(ed.imageId, a);
    // the status stays the drawer's: reading the line is part of making it
    await ed.doc.update(a.id, { text: r.text, score: r.score, status: a.status });
    ed.report(`read "${r.text}" (score ${r.score.toFixed(2)}), ${Math.round(performance.now() - t0)} ms`);
  } catch (e) {
    ed.report(`not read: ${errorText(e)}`);
  }
}
