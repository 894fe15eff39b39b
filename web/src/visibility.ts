// What the editor shows: hide or lock a shape or a whole class (the legend and the list
// have the switches; H and Shift+L the keys), brightness and contrast of the image, and a
// crop of the selected text line beside its transcription.

import { Annotation } from "./api";
import { el } from "./dom";
import type { Editor } from "./editor";

const ADJUST_KEY = "labelpilot.adjust";
const CLASSES_KEY = "labelpilot.class-switches";

/** The classes hidden or locked stay so from image to image, for the session. */
export function restoreClassSwitches(ed: Editor): void {
  try {
    const kept = JSON.parse(sessionStorage.getItem(CLASSES_KEY) ?? "{}");
    for (const l of kept.hidden ?? []) ed.canvas.hiddenClasses.add(String(l));
    for (const l of kept.locked ?? []) ed.canvas.lockedClasses.add(String(l));
  } catch {
    // a damaged value: every class shown and unlocked
  }
}

export function keepClassSwitches(ed: Editor): void {
  sessionStorage.setItem(CLASSES_KEY, JSON.stringify({
    hidden: [...ed.canvas.hiddenClasses], locked: [...ed.canvas.lockedClasses] }));
}

/** The legend: each class's colour, with a hide and a lock switch for the whole class. */
export function legend(ed: Editor): HTMLElement {
  const { canvas } = ed;
  return el("ul", { class: "legend", id: "legend" }, ...[...canvas.colors].map(([label, color]) => {
    const hide = switchButton("hide-class", `hide every ${label}`, "hide", () => canvas.hiddenClasses.has(label),
      () => {
        canvas.toggle(canvas.hiddenClasses, label);
        keepClassSwitches(ed);
        ed.refresh();
      });
    const lock = switchButton("lock-class", `lock every ${label}`, "lock", () => canvas.lockedClasses.has(label),
      () => {
        canvas.toggle(canvas.lockedClasses, label);
        keepClassSwitches(ed);
        ed.refresh();
      });
    return el("li", { "data-label": label }, el("span", { class: "swatch", style: `background:${color}` }),
      label, hide, lock);
  }));
}

/** The hide and lock switches of one shape, for its row in the list. */
export function shapeSwitches(ed: Editor, a: Annotation): HTMLElement[] {
  const { canvas } = ed;
  return [
    switchButton("hide", `hide this ${a.label} (H)`, "hide", () => canvas.hidden.has(a.id), () => {
      canvas.toggle(canvas.hidden, a.id);
      ed.refresh();
    }),
    switchButton("lock", `lock this ${a.label} (Shift+L)`, "lock", () => canvas.locked.has(a.id), () => {
      canvas.toggle(canvas.locked, a.id);
      ed.refresh();
    }),
  ];
}

function switchButton(cls: string, title: string, icon: string, on: () => boolean, flip: () => void): HTMLElement {
  const b = el("button", { class: `switch ${cls}${on() ? " on" : ""}`, title, "aria-label": title,
    "aria-pressed": String(on()) }, icon);
  b.onclick = (e) => {
    e.stopPropagation();  // not a click on the row (which selects)
    flip();
  };
  return b;
}

/** Brightness and contrast sliders (kept for the session; double-click resets). */
export function adjustControls(ed: Editor): HTMLElement {
  let kept = { brightness: 1, contrast: 1 };
  try {
    kept = { ...kept, ...JSON.parse(sessionStorage.getItem(ADJUST_KEY) ?? "{}") };
  } catch {
    // a damaged value: start from the image as it is
  }
  const slider = (id: string, label: string, value: number) => el("input", { id, type: "range", min: "0.2",
    max: "3", step: "0.05", value: String(value), title: `${label} (double-click resets)`, "aria-label": label });
  const bright = slider("brightness", "brightness", kept.brightness);
  const contrast = slider("contrast", "contrast", kept.contrast);
  const apply = () => {
    ed.canvas.adjust(Number(bright.value), Number(contrast.value));
    sessionStorage.setItem(ADJUST_KEY, JSON.stringify({ brightness: Number(bright.value), contrast: Number(contrast.value) }));
  };
  for (const s of [bright, contrast]) {
    s.oninput = apply;
    s.ondblclick = () => {
      s.value = "1";
      apply();
    };
    s.addEventListener("keydown", (e) => e.stopPropagation());
  }
  ed.canvas.adjust(kept.brightness, kept.contrast);
  return el("span", { class: "adjust" }, "☀", bright, "◐", contrast);
}

/** The selected text line as the image shows it, next to its transcription. */
export function cropPreview(ed: Editor): { root: HTMLCanvasElement; update(sel: Annotation | null): void } {
  const root = el("canvas", { id: "line-crop", class: "line-crop" });
  root.hidden = true;
  let shown = "";
  return {
    root,
    update(sel) {
      const key = sel && sel.text !== null ? `${sel.id}:${sel.version}` : "";
      if (key === shown) return;
      shown = key;
      root.hidden = !sel || sel.text === null || !ed.canvas.crop(sel.id, root);
    },
  };
}
