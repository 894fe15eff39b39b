// The editor's keyboard: one table of keys (the `?` help lists them with the smart tools'),
// handled one at a time once the image is in.

import { Annotation, api } from "./api";
import { el, toast } from "./dom";
import type { Editor } from "./editor";
import { markDone, sendBack, step, submit } from "./review";
import { copyShapes, pasteShapes, propagateShapes } from "./clipboard";
import { PromptTool } from "./tools";
import { keepClassSwitches } from "./visibility";

const HELP: [string, string][] = [
  ["V / Esc", "select tool (Esc also cancels drawing)"], ["B", "draw a box"], ["P", "draw a polygon (double-click or Enter closes it)"],
  ["Q", "draw a quad (4 clicks)"], ["O", "put a point"], ["I", "draw a line (a polyline: double-click or Enter ends it)"],
  ["M / X", "brush / eraser on the selected mask (the brush starts a new mask when none is selected); [ ] size"], ["Del", "delete the selected annotation"], ["E", "edit the transcription"],
  ["Tab", "select the next annotation (and pan to it)"], ["L", "jump to the next low-confidence proposal"],
  ["Z", "zoom to the selected annotation"], ["drag a box's top handle", "turn it (it becomes a rotated box)"], ["H / Shift+H", "hide the selected annotation / show every hidden one"],
  ["Shift+L", "lock or unlock the selected annotation (no moves, no deletes)"],
  ["Shift+click, Shift+drag, Ctrl+A", "pick more shapes (one by one, a lasso, all): move, delete, accept, reject or re-class them together"],
  ["Ctrl+C / Ctrl+V", "copy the picked shapes / paste them (on this or another image)"],
  ["Ctrl+B", "copy the picked shapes to the next image of the list and open it"],
  ["+ / −", "two shapes picked: merge the other into the selected one / cut it out of the selected one"],
  ["Enter", "accept the selected proposal"], ["R", "reject the selected one"], ["A", "accept all proposals"],
  ["D", "mark the image done (reviewers; every proposal decided) or submit it for review (annotators), then the next"],
  ["U", "send a submitted image back to its annotator, with a comment (reviewers)"],
  ["N / →", "next image of the list"], ["←", "previous image of the list"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"], ["F / 1", "fit / zoom 1:1"],
  ["Wheel, drag on empty space or right-drag, minimap", "zoom, pan, jump (the minimap shows when the image overflows)"],
  ["?", "this help"],
];

function toggleHelp(ed: Editor): void {
  const open = document.getElementById("help");
  if (open) {
    open.remove();
    return;
  }
  const rows = [...HELP, ...ed.tools.map((t): [string, string] => [t.key.toUpperCase(), t.help])];
  const t = el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, el("kbd", {}, k)), el("td", {}, v))));
  document.body.append(el("div", { class: "dialog", id: "help" }, el("h3", {}, "Keyboard"), t));
}

export async function handleKey(ed: Editor, e: KeyboardEvent): Promise<void> {
  if (ed.conflictOpen || e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  if (e.ctrlKey || e.metaKey) {
    const ctrl = CTRL_KEYS[e.key.toLowerCase()];
    if (ctrl) {
      e.preventDefault();
      await ctrl(ed, e);
    }
    return;
  }
  if (e.altKey) return;
  if (ed.active && (await promptKey(ed, ed.active, e))) return;
  const tool = ed.tools.find((t) => t.key === e.key.toLowerCase());
  if (tool) {
    e.preventDefault();
    if (tool.kind === "action") await ed.runAction(tool);
    else ed.setTool(tool.id);
    return;
  }
  const handler = KEYS[e.key.length === 1 ? e.key.toLowerCase() : e.key];
  if (handler) await handler(ed, e);
}

/** Enter, Tab, Backspace and Esc while a prompt tool is active; true when handled. */
async function promptKey(ed: Editor, tool: PromptTool, e: KeyboardEvent): Promise<boolean> {
  switch (e.key) {
    case "Enter": await tool.keep(); return true;
    case "Tab":
      e.preventDefault();
      return tool.alternative();
    case "Delete": case "Backspace":
      // take back the last click (the canvas asks again), or forget the answer
      if (!ed.canvas.undoSmart()) tool.reset();
      return true;
    default: return false;
  }
}

/** Cycle the selection through `anns` (forwards, or backwards with `back`). */
function selectNext(ed: Editor, anns: Annotation[], back = false): void {
  const shown = anns.filter((a) => ed.canvas.isVisible(a));
  if (!shown.length) return;
  const i = shown.findIndex((a) => a.id === ed.canvas.selected);
  const next = shown[(i + (back ? shown.length - 1 : 1)) % shown.length].id;
  ed.canvas.select(next);
  ed.canvas.reveal(next);
}

/** The picked shapes that may change (the locked ones said so). */
function changeable(ed: Editor): Annotation[] {
  const picked = ed.canvas.pickedAnnotations();
  const open = picked.filter((a) => !ed.canvas.isLocked(a));
  if (open.length < picked.length) toast(`${picked.length - open.length} locked shape(s) left as they are: Shift+L unlocks.`);
  return open;
}

/** Accept or reject the picked shapes (one request for many). */
async function decide(ed: Editor, status: "accepted" | "rejected"): Promise<void> {
  const picked = changeable(ed);
  if (picked.length === 1) return void (await ed.doc.update(picked[0].id, { status }));
  if (picked.length) await decideMany(ed, status, picked.map((a) => a.id));
}

/** One request for many decisions, then the image's annotations read again. */
async function decideMany(ed: Editor, status: "accepted" | "rejected", ids: number[]): Promise<void> {
  await ed.doc.idle();
  const r = await api.bulk(ed.imageId, status, ids);
  await ed.doc.load();
  toast(`${status} ${r.changed}`);
}

/** Merge the other picked shape into the selected one, or cut it out (two picked). */
async function combine(ed: Editor, op: "union" | "subtract"): Promise<void> {
  const sel = ed.selected();
  const others = ed.canvas.pickedAnnotations().filter((a) => a.id !== sel?.id);
  if (!sel || others.length !== 1) {
    return void toast("Pick two shapes (click one, shift-click the other): the selected one keeps the result.");
  }
  if (ed.canvas.isLocked(sel) || ed.canvas.isLocked(others[0])) return void toast("A locked shape is not changed.");
  await ed.doc.idle();
  const [a, b] = [ed.doc.byId(sel.id)!, ed.doc.byId(others[0].id)!];
  await api.combine(a.id, a.version, b.id, b.version, op);
  await ed.doc.load();
  ed.canvas.select(a.id);
  toast(op === "union" ? "Merged into one shape." : "Cut out of the selected shape.");
}

/** The selection, unless it is locked (then said so). */
function unlocked(ed: Editor): Annotation | null {
  const sel = ed.selected();
  if (sel && ed.canvas.isLocked(sel)) {
    toast(`This ${sel.label} is locked: Shift+L (or its lock) unlocks it.`);
    return null;
  }
  return sel;
}

async function go(ed: Editor, delta: 1 | -1): Promise<void> {
  await ed.doc.idle();
  await step(ed.imageId, delta);
}

type KeyHandler = (ed: Editor, e: KeyboardEvent) => void | Promise<void>;

export const KEYS: Record<string, KeyHandler> = {
  "?": (ed) => toggleHelp(ed),
  Escape: (ed) => {
    ed.canvas.cancelDrawing();
    if (ed.canvas.tool === "select") ed.canvas.select(null);
    ed.setTool("select");
    document.getElementById("help")?.remove();
  },
  v: (ed) => ed.setTool("select"),
  b: (ed) => ed.setTool("box"),
  p: (ed) => ed.setTool("polygon"),
  i: (ed) => ed.setTool("polyline"),
  q: (ed) => ed.setTool("quad"),
  o: (ed) => ed.setTool("point"),
  m: (ed) => ed.setTool("brush"),
  x: (ed) => ed.setTool("eraser"),
  "[": (ed) => ed.brush.resize(1 / 1.25),
  "]": (ed) => ed.brush.resize(1.25),
  f: (ed) => ed.canvas.fit(),
  "1": (ed) => ed.canvas.oneToOne(),
  Delete: async (ed) => {
    const many = ed.canvas.pickedAnnotations().length > 1;
    for (const a of many ? changeable(ed) : [unlocked(ed)]) if (a) await ed.doc.remove(a.id);
  },
  Backspace: (ed, e) => KEYS.Delete(ed, e),
  e: (ed, e) => {
    if (!ed.selected()) return;
    e.preventDefault();
    ed.text.focus();
    ed.text.select();
  },
  Tab: (ed, e) => {
    e.preventDefault();
    if (ed.doc.anns.length) selectNext(ed, ed.doc.anns, e.shiftKey);
  },
  l: (ed, e) => {
    if (e.shiftKey) {
      const sel = ed.selected();
      if (sel) {
        const on = ed.canvas.toggle(ed.canvas.locked, sel.id);
        ed.refresh();
        toast(on ? `Locked this ${sel.label}.` : `Unlocked this ${sel.label}.`);
      }
      return;
    }
    const low = ed.doc.anns.filter((a) => a.status === "predicted" && (a.score ?? 1) < 0.8);
    if (low.length) selectNext(ed, low);
    else toast("No low-confidence proposals left on this image.");
  },
  h: (ed, e) => {
    if (e.shiftKey) {
      ed.canvas.hidden.clear();
      ed.canvas.hiddenClasses.clear();
      keepClassSwitches(ed);
      ed.canvas.redraw();
    } else {
      const sel = ed.selected();
      if (sel) ed.canvas.toggle(ed.canvas.hidden, sel.id);
    }
    ed.refresh();
  },
  z: (ed) => {
    if (ed.canvas.selected !== null) ed.canvas.zoomTo(ed.canvas.selected);
  },
  Enter: async (ed) => {
    const sel = ed.selected();
    if (ed.canvas.tool === "polygon" || ed.canvas.tool === "polyline") ed.canvas.finishPolygon();
    else if (sel && !ed.reviewersOnly("accept proposals")) await decide(ed, "accepted");
  },
  r: async (ed) => {
    const sel = ed.selected();
    if (sel && !ed.reviewersOnly("reject proposals")) await decide(ed, "rejected");
  },
  a: async (ed) => {
    if (ed.reviewersOnly("accept proposals")) return;
    await ed.doc.idle();
    await decideMany(ed, "accepted", ed.doc.anns.filter((a) => a.status === "predicted").map((a) => a.id));
  },
  d: async (ed) => {
    await ed.doc.idle();
    if (!ed.reviewer) await submit(ed.image);
    else if (!(await markDone(ed.image))) return;
    await ed.advance();
  },
  u: async (ed) => {
    if (!ed.reviewer) return void toast("Only reviewers send images back.");
    if (ed.image.review_state !== "submitted") return void toast("Only a submitted image is sent back.");
    await ed.doc.idle();
    if (await sendBack(ed.image)) await ed.advance();
  },
  "+": (ed) => combine(ed, "union"),
  "=": (ed) => combine(ed, "union"),
  "-": (ed) => combine(ed, "subtract"),
  n: (ed) => go(ed, 1),
  ArrowRight: (ed) => go(ed, 1),
  ArrowLeft: (ed) => go(ed, -1),
};

/** Keys with Ctrl (or Cmd). */
const CTRL_KEYS: Record<string, KeyHandler> = {
  z: (ed, e) => (e.shiftKey ? ed.doc.redo() : ed.doc.undo()),
  y: (ed) => ed.doc.redo(),
  a: (ed) => ed.canvas.pickAll(),
  c: (ed) => copyShapes(ed),
  v: (ed) => pasteShapes(ed),
  b: (ed) => propagateShapes(ed),
};
