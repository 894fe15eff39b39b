// The labeling editor: one image and its annotations, the layout, the drawing tools, the
// smart tools (through the hook in tools.ts) and the conflict dialog. Keys live in keys.ts,
// the text field in transcription.ts, the review flow in review.ts.

import { Annotation, Image, Me, Place, Project, Shape, api, errorText } from "./api";
import { LabelCanvas, Tool } from "./canvas";
import { classColors } from "./shapes";
import { Conflict, Doc } from "./doc";
import { el, toast } from "./dom";
import { attributePanel, defaultsFor, tagsField } from "./attributes";
import { historyPanel } from "./history";
import { brushControls } from "./brush";
import { adjustControls, cropPreview, legend, restoreClassSwitches, shapeSwitches } from "./visibility";
import { KEYS, handleKey } from "./keys";
import { currentList, forgetList, listName, place, placeText, reviewNote, step } from "./review";
import { ActionTool, EditorContext, PromptTool, SmartTool, makeSmartTools } from "./tools";
import { readNewLine, restoreDrafts, wireFields } from "./transcription";
// the smart tools register themselves with the hook; their order is the toolbar's
import "./smartmask";
import "./clickbox";
import "./recognize";

type DrawTool = Exclude<Tool, "prompt">;

const DRAW_TOOLS: [DrawTool, string][] = [
  ["select", "Select (V)"], ["box", "Box (B)"], ["polygon", "Polygon (P)"], ["quad", "Quad (Q)"],
  ["polyline", "Line (I)"], ["point", "Point (O)"], ["brush", "Brush (M)"], ["eraser", "Eraser (X)"],
];

/** The editor on screen; null while the next one loads (the one being left then takes no
 * keys: a key pressed during a navigation never acts on the image left behind). */
let current: Editor | null = null;

/** Open the next image to label (the server picks it and claims it for this user). */
export async function openNext(): Promise<void> {
  forgetList();
  const img = await api.next();
  if (!img) {
    toast("Nothing left to label.");
    return;
  }
  location.hash = `#/label/${img.id}`;
}

/** The editor's state, as its parts (layout, keys, smart tools) share it. */
export class Editor implements EditorContext {
  readonly stage = el("div", { class: "stage" });
  readonly labels: HTMLSelectElement;
  readonly text = el("input", { id: "transcription", placeholder: "transcription", disabled: "" });
  readonly status = el("span", { id: "save-status" }, "");
  readonly line = el("span", { id: "tool-latency" }, "");
  readonly list = el("ol", { class: "ann-list", id: "ann-list" });
  readonly position = el("p", { id: "position" }, "");
  readonly note = el("div", { id: "note-slot" });
  readonly attributes = attributePanel(this);
  readonly crop = cropPreview(this);
  readonly brush: ReturnType<typeof brushControls>;
  /** where the image stands in the list the editor walks */
  place: Place | null = null;
  /** false until the image and its annotations are in: keys wait for it */
  ready = false;
  /** keys are handled one at a time, in the order pressed */
  keys: Promise<void> = Promise.resolve();
  readonly buttons = new Map<string, HTMLButtonElement>();
  readonly doc: Doc;
  readonly canvas: LabelCanvas;
  readonly tools: SmartTool[];
  /** the prompt tool taking the canvas's clicks, if one is active */
  active: PromptTool | null = null;
  conflictOpen = false;

  constructor(readonly project: Project, readonly image: Image, readonly me: Me | null) {
    this.labels = el("select", { id: "label" }, ...project.labels.map((l) => el("option", { value: l }, l)));
    this.doc = new Doc(image.id, () => this.refresh(), (c) => showConflict(this, c));
    this.canvas = new LabelCanvas(this.stage, {
      select: () => this.refresh(),
      drawn: (shape) => void createDrawn(this, shape),
      moved: (id, shape) => this.doc.update(id, { shape }),
      emptied: (id) => void this.doc.remove(id),
      prompt: (clicks, box) => void this.active?.ask(clicks, box),
    });
    this.tools = makeSmartTools(this);
    this.brush = brushControls(this);
    this.canvas.colors = classColors(project.labels, project.label_colors ?? {});
    this.canvas.skeletons = project.label_keypoints ?? {};
    restoreClassSwitches(this);
  }

  get imageId(): number {
    return this.image.id;
  }

  selected(): Annotation | null {
    return this.canvas.selected === null ? null : this.doc.byId(this.canvas.selected) ?? null;
  }

  label(): string {
    return this.labels.value;
  }

  defaults(label: string): Record<string, unknown> {
    return defaultsFor(this.project, label);
  }

  report(message: string): void {
    this.line.textContent = message;
  }

  refresh(): void {
    refresh(this);
  }

  get reviewer(): boolean {
    return this.me?.role !== "annotator";
  }

  humanStatus(): "accepted" | "edited" {
    return this.reviewer ? "accepted" : "edited";
  }

  setTool(id: string): void {
    setTool(this, id);
  }

  runAction(tool: ActionTool): Promise<void> {
    return runAction(this, tool);
  }

  /** After done or submit: the next image of the list, or the queue's next. */
  async advance(): Promise<void> {
    if (Object.keys(currentList()).length && (await step(this.imageId, 1))) return;
    await openNext();
  }

  /** Annotators get a word instead of a silent refusal; true when this one is one. */
  reviewersOnly(what: string): boolean {
    if (this.reviewer) return false;
    toast(`Annotators cannot ${what}: press D to submit the image for review.`);
    return true;
  }
}

export async function labelView(app: HTMLElement, header: (p: Project) => HTMLElement,
                                me: Me | null, imageId: number): Promise<void> {
  (window as any).__editorReady = undefined;
  (window as any).__editorImage = undefined;
  current = null;  // from now on the editor being left takes no keys
  const [project, image] = await Promise.all([api.project(), api.image(imageId)]);
  const ed = new Editor(project, image, me);
  current = ed;
  const { toolbar, side } = layout(ed);
  app.replaceChildren(header(project), toolbar, el("div", { class: "editor" }, ed.stage, side));
  (window as any).__canvas = ed.canvas;
  (window as any).__doc = ed.doc;
  const onKey = (e: KeyboardEvent) => {
    if (current !== ed || !document.body.contains(ed.stage)) {
      window.removeEventListener("keydown", onKey);
      return;
    }
    // the browser's own use of these keys is decided now, the key itself once it is our turn
    if (e.key === "Tab" && !(e.target instanceof HTMLInputElement)) e.preventDefault();
    ed.keys = ed.keys.then(() => (ed.ready ? handleKey(ed, e) : undefined)).catch((err) =>
      toast(errorText(err), "error"));
  };
  window.addEventListener("keydown", onKey);
  // keys pressed while loading wait here: no action acts on a half-loaded image
  let loaded: () => void = () => {};
  ed.keys = ed.keys.then(() => new Promise<void>((r) => (loaded = r)));
  await ed.canvas.loadImage(`/api/images/${imageId}/file`);
  await ed.doc.load();
  await restoreDrafts(ed);
  ed.ready = true;
  loaded();
  void showPlace(ed);
  setTool(ed, "select");
  for (const t of ed.tools) if (t.kind === "prompt") t.opened?.();
  ed.canvas.canvas.focus();
  (window as any).__editorReady = performance.now();
  (window as any).__editorImage = imageId;
}

/** The toolbar (drawing tools, then the smart tools and their controls) and the side panel. */
function layout(ed: Editor): { toolbar: HTMLElement; side: HTMLElement } {
  const { buttons } = ed;
  for (const [t, title] of DRAW_TOOLS) buttons.set(t, el("button", { "data-tool": t }, title));
  for (const t of ed.tools) {
    buttons.set(t.id, el("button", { "data-tool": t.id }, `${t.name} (${t.key.toUpperCase()})`));
  }
  for (const [id, b] of buttons) {
    const tool = ed.tools.find((t) => t.id === id);
    b.onclick = () => (tool?.kind === "action" ? void runAction(ed, tool) : setTool(ed, id));
  }
  const controls = ed.tools.flatMap((t) => (t.kind === "prompt" ? t.controls : []));
  // the keys, for those who do not know `?` yet
  const help = el("button", { id: "help-button", title: "keyboard shortcuts (?)" }, "? Keys");
  help.onclick = () => KEYS["?"](ed, new KeyboardEvent("keydown"));
  const toolbar = el("div", { class: "toolbar" }, ...buttons.values(), ed.brush.root, ...controls, adjustControls(ed), help,
    ed.status, ed.line);
  const { image } = ed;
  const side = el("aside", {},
    el("h3", {}, image.file_name), el("p", {}, `${image.width}x${image.height} · `,
      el("span", { id: "review-state" }, image.review_state),
      image.assignee ? el("span", { id: "assignee" }, ` · for ${image.assignee}`) : ""),
    ed.position, ...chosenBecause(image), reviewButtons(ed), ed.note,
    tagsField(ed), el("label", {}, "Class ", ed.labels), legend(ed), ed.crop.root, el("label", {}, "Text ", ed.text),
    ed.attributes.root, ed.list,
    historyPanel(image.id, () => ed.canvas.selected));
  wireFields(ed);
  return { toolbar, side };
}

/** Why an active-learning selection put this image first: its strategy, score, reason. */
function chosenBecause(image: Image): HTMLElement[] {
  const q = image.queue_reason;
  if (!image.queue_rank || !q) return [];
  const score = q.score === null ? "" : `, score ${q.score.toFixed(2)}`;
  return [el("p", { id: "chosen-because", class: "hint" },
    `Chosen #${image.queue_rank} by ${q.strategy}${score}: ${q.reason}`)];
}

/** Previous / Next, and the review decisions with their keys, for mouse users. */
function reviewButtons(ed: Editor): HTMLElement {
  const b = (id: string, label: string, key: string) => {
    const button = el("button", { id, title: `key ${key}` }, label);
    button.onclick = () => {
      ed.keys = ed.keys.then(() => (ed.ready ? KEYS[key](ed, new KeyboardEvent("keydown")) : undefined))
        .catch((err) => toast(errorText(err), "error"));
    };
    return button;
  };
  const row = el("div", { class: "review-buttons" }, b("prev-image", "← Previous", "ArrowLeft"),
    b("next-image", "Next →", "ArrowRight"));
  if (ed.reviewer) {
    row.append(b("accept", "Accept (Enter)", "Enter"), b("reject", "Reject (R)", "r"),
      b("accept-all", "Accept all (A)", "a"), b("done", "Done (D)", "d"));
    if (ed.image.review_state === "submitted") row.append(b("send-back", "Send back (U)", "u"));
  } else {
    row.append(b("submit", "Submit for review (D)", "d"));
  }
  return row;
}

/** "image i of N" in the list walked, and the last review note on the image. */
async function showPlace(ed: Editor): Promise<void> {
  ed.place = await place(ed.imageId);
  ed.position.textContent = `${placeText(ed.place)} · ${listName(currentList())}`;
  const note = await reviewNote(ed.imageId);
  ed.note.replaceChildren(...(note ? [note] : []));
}

function setTool(ed: Editor, id: string): void {
  ed.active?.reset();
  const prompt = ed.tools.find((t) => t.id === id && t.kind === "prompt") as PromptTool | undefined;
  ed.active = prompt ?? null;
  if (prompt) ed.canvas.setTool("prompt", prompt.mode);
  else ed.canvas.setTool(id as DrawTool);
  for (const [k, b] of ed.buttons) b.classList.toggle("active", k === id);
  ed.brush.root.hidden = id !== "brush" && id !== "eraser";
}

async function createDrawn(ed: Editor, shape: Shape): Promise<void> {
  // a text line: a quad, or any region drawn in an OCR project (not points, lines, masks)
  const isText = shape.type === "quad" ||
    (ed.project.task === "ocr" && ["polygon", "box", "rotated_box"].includes(shape.type));
  const keypoint = shape.type === "point" ? nextKeypoint(ed) : null;
  await ed.doc.create({ label: ed.label(), shape, text: isText ? "" : null,
    attributes: { ...ed.defaults(ed.label()), ...(keypoint ? { keypoint: keypoint.name, visibility: 2 } : {}) },
    group: keypoint?.group ?? null, status: ed.humanStatus() });
  if (keypoint) ed.report(`keypoint ${keypoint.name} (${keypoint.index} of ${keypoint.of}) of instance ${keypoint.group}`);
  const last = ed.doc.anns[ed.doc.anns.length - 1];
  if (last) ed.canvas.selected = last.id;
  ed.refresh();
  // a new text line is read at once; the person corrects what the model got wrong
  if (isText && last) await readNewLine(ed, last);
}

/** For a keypoint class: the instance a new point belongs to (the selected point's, else
 * a new one) and the first of the class's keypoints it still lacks. */
function nextKeypoint(ed: Editor): { name: string; group: number; index: number; of: number } | null {
  const label = ed.label();
  const schema = ed.project.label_keypoints?.[label];
  if (!schema?.keypoints.length) return null;
  const sel = ed.selected();
  const groups = ed.doc.anns.map((a) => a.group ?? 0);
  let group = sel && sel.label === label && sel.shape.type === "point" && sel.group !== null ? sel.group : null;
  const used = (g: number) => new Set(ed.doc.anns.filter((a) => a.label === label && a.group === g)
    .map((a) => String(a.attributes.keypoint ?? "")));
  if (group === null || schema.keypoints.every((k) => used(group!).has(k))) group = Math.max(0, ...groups) + 1;
  const index = schema.keypoints.findIndex((k) => !used(group!).has(k));
  return { name: schema.keypoints[index], group, index: index + 1, of: schema.keypoints.length };
}

async function runAction(ed: Editor, tool: ActionTool): Promise<void> {
  const why = tool.unavailable();
  if (why) {
    toast(`${tool.name}: ${why}`);
    return;
  }
  const t0 = performance.now();
  try {
    const msg = await tool.run();
    ed.report(`${tool.name}: ${Math.round(performance.now() - t0)} ms, ${msg}`);
  } catch (e) {
    toast(errorText(e), "error");
  }
}

/** Redraw after any change: canvas, save status, the selection's fields, the list. */
function refresh(ed: Editor): void {
  const { doc, canvas, text } = ed;
  canvas.setAnnotations(doc.anns);
  ed.status.textContent = doc.saving ? "saving…" : doc.lastError ? `error: ${doc.lastError}` : "saved";
  const sel = ed.selected();
  text.disabled = !sel;
  if (document.activeElement !== text) text.value = sel?.text ?? "";
  if (sel) ed.labels.value = sel.label;
  ed.attributes.update(sel);
  ed.crop.update(sel);
  ed.list.replaceChildren(...doc.anns.map((a) => listItem(ed, a)));
}

function listItem(ed: Editor, a: Annotation): HTMLElement {
  const hidden = !ed.canvas.isVisible(a), locked = ed.canvas.isLocked(a);
  const item = el("li", { class: `${a.status}${ed.canvas.picked.has(a.id) ? " selected" : ""}` +
    `${hidden ? " hidden-shape" : ""}${locked ? " locked-shape" : ""}`, "data-id": String(a.id) },
    ...shapeSwitches(ed, a), " ",
    el("span", { class: "lbl" }, a.label), " ",
    el("span", { class: "txt" }, a.text ?? ""), " ",
    el("span", { class: "meta" }, `${a.status}${a.score !== null ? ` ${a.score.toFixed(2)}` : ""} v${a.version}`));
  item.onclick = (e) => {
    if (hidden) return;  // a hidden shape is shown again first
    ed.canvas.select(a.id, e.shiftKey);  // shift-click adds it to the picked shapes
    ed.canvas.reveal(a.id);
  };
  return item;
}

function showConflict(ed: Editor, c: Conflict): void {
  ed.conflictOpen = true;
  const theirs = c.theirs;
  const dlg = el("div", { class: "dialog", id: "conflict", role: "dialog" },
    el("h3", {}, "Someone else changed this annotation"),
    el("p", {}, theirs ? `Now: ${theirs.label} "${theirs.text ?? ""}" (${theirs.status}, v${theirs.version}, by ${theirs.updated_by ?? "?"})`
      : "It was deleted."),
    el("p", {}, `Your change: ${JSON.stringify(c.mine)}`));
  const keepTheirs = el("button", { id: "keep-theirs" }, "Keep theirs");
  const keepMine = el("button", { id: "keep-mine" }, "Apply mine on top");
  const close = (choice: "mine" | "theirs") => {
    dlg.remove();
    ed.conflictOpen = false;
    c.resolve(choice);
  };
  keepTheirs.onclick = () => close("theirs");
  keepMine.onclick = () => close("mine");
  dlg.append(keepTheirs, keepMine);
  document.body.append(dlg);
  keepMine.focus();
}

