// The editor's keyboard: one table of keys (the `?` help lists them with the smart tools'),
// handled one at a time once the image is in.

import { Annotation, api } from "./api";
import { el, toast } from "./dom";
import type { Editor } from "./editor";
import { markDone, sendBack, step, submit } from "./review";
import { PromptTool } from "./tools";

const HELP: [string, string][] = [
  ["V / Esc", "select tool (Esc also cancels drawing)"], ["B", "draw a box"], ["P", "draw a polygon (double-click or Enter closes it)"],
  ["Q", "draw a quad (4 clicks)"], ["Del", "delete the selected annotation"], ["E", "edit the transcription"],
  ["Tab", "select the next annotation"], ["L", "jump to the next low-confidence proposal"],
  ["Enter", "accept the selected proposal"], ["R", "reject the selected one"], ["A", "accept all proposals"],
  ["D", "mark the image done (reviewers; every proposal decided) or submit it for review (annotators), then the next"],
  ["U", "send a submitted image back to its annotator, with a comment (reviewers)"],
  ["N / →", "next image of the list"], ["←", "previous image of the list"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"], ["F / 1", "fit / zoom 1:1"], ["Wheel, Shift+drag", "zoom, pan"],
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
  if ((e.ctrlKey || e.metaKey) && ["z", "y"].includes(e.key.toLowerCase())) {
    e.preventDefault();
    await (e.shiftKey || e.key.toLowerCase() === "y" ? ed.doc.redo() : ed.doc.undo());
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
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
  const i = anns.findIndex((a) => a.id === ed.canvas.selected);
  ed.canvas.selected = anns[(i + (back ? anns.length - 1 : 1)) % anns.length].id;
  ed.refresh();
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
    ed.setTool("select");
    document.getElementById("help")?.remove();
  },
  v: (ed) => ed.setTool("select"),
  b: (ed) => ed.setTool("box"),
  p: (ed) => ed.setTool("polygon"),
  q: (ed) => ed.setTool("quad"),
  f: (ed) => ed.canvas.fit(),
  "1": (ed) => ed.canvas.oneToOne(),
  Delete: async (ed) => {
    const sel = ed.selected();
    if (sel) await ed.doc.remove(sel.id);
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
  l: (ed) => {
    const low = ed.doc.anns.filter((a) => a.status === "predicted" && (a.score ?? 1) < 0.8);
    if (low.length) selectNext(ed, low);
    else toast("No low-confidence proposals left on this image.");
  },
  Enter: async (ed) => {
    const sel = ed.selected();
    if (ed.canvas.tool === "polygon") ed.canvas.finishPolygon();
    else if (sel && !ed.reviewersOnly("accept proposals")) await ed.doc.update(sel.id, { status: "accepted" });
  },
  r: async (ed) => {
    const sel = ed.selected();
    if (sel && !ed.reviewersOnly("reject proposals")) await ed.doc.update(sel.id, { status: "rejected" });
  },
  a: async (ed) => {
    if (ed.reviewersOnly("accept proposals")) return;
    await ed.doc.idle();
    const ids = ed.doc.anns.filter((a) => a.status === "predicted").map((a) => a.id);
    const r = await api.bulk(ed.imageId, "accepted", ids);
    await ed.doc.load();
    toast(`accepted ${r.changed}`);
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
  n: (ed) => go(ed, 1),
  ArrowRight: (ed) => go(ed, 1),
  ArrowLeft: (ed) => go(ed, -1),
};
