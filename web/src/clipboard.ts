// Copy, paste and propagate shapes: Ctrl+C keeps the picked shapes (across images, for the
// session), Ctrl+V adds them to the image open, Ctrl+B copies them to the next image of
// the list. Copies are a person's shapes: new ids, the person's status, source human.

import { Annotation, api, errorText } from "./api";
import { toast } from "./dom";
import type { Editor } from "./editor";

const CLIPBOARD_KEY = "labelpilot.clipboard";

type Copied = Pick<Annotation, "label" | "shape" | "text" | "attributes">;

function copies(anns: Annotation[]): Copied[] {
  return anns.map((a) => ({ label: a.label, shape: a.shape, text: a.text, attributes: a.attributes }));
}

export function copyShapes(ed: Editor): void {
  const picked = ed.canvas.pickedAnnotations();
  if (!picked.length) return void toast("Pick the shapes to copy first (click, shift-click or a shift-drag lasso).");
  sessionStorage.setItem(CLIPBOARD_KEY, JSON.stringify(copies(picked)));
  toast(`Copied ${picked.length} shape${picked.length === 1 ? "" : "s"}.`);
}

function clipboard(): Copied[] {
  try {
    const got = JSON.parse(sessionStorage.getItem(CLIPBOARD_KEY) ?? "[]");
    return Array.isArray(got) ? got : [];
  } catch {
    return [];
  }
}

/** Ctrl+V: the copied shapes on this image (clipped to it), picked afterwards. */
export async function pasteShapes(ed: Editor): Promise<void> {
  const items = clipboard();
  if (!items.length) return void toast("Nothing copied yet: Ctrl+C copies the picked shapes.");
  const before = new Set(ed.doc.anns.map((a) => a.id));
  for (const c of items) {
    await ed.doc.create({ ...c, group: null, status: ed.humanStatus() });
  }
  const added = ed.doc.anns.filter((a) => !before.has(a.id));
  ed.canvas.select(null);
  for (const a of added) ed.canvas.select(a.id, true);
  if (ed.doc.lastError) toast(ed.doc.lastError, "error");
  else toast(`Pasted ${added.length} shape${added.length === 1 ? "" : "s"}.`);
}

/** Ctrl+B: the picked shapes copied to the next image of the list, which opens. */
export async function propagateShapes(ed: Editor): Promise<void> {
  const picked = ed.canvas.pickedAnnotations();
  if (!picked.length) return void toast("Pick the shapes to propagate first.");
  await ed.doc.idle();
  const place = ed.place ?? null;
  const target = place?.next ?? null;
  if (target === null) return void toast("This is the last image of the list: nothing to propagate to.");
  let made = 0;
  try {
    for (const c of copies(picked)) {
      await api.create(target, { ...c, group: null, status: ed.humanStatus(), source: "human" });
      made++;
    }
  } catch (e) {
    toast(`${made} of ${picked.length} copied, then: ${errorText(e)}`, "error");
    return;
  }
  toast(`Copied ${made} shape${made === 1 ? "" : "s"} to the next image.`);
  location.hash = `#/label/${target}`;
}
