// LabelPilot's browser UI: sign-in, overview, image grid, labeling and review.
// Every piece of user text goes into the page through textContent, never as HTML.

import { Annotation, ApiError, ClickBoxResult, Image, Me, Project, SegmentResult, Shape, SmartClick, XY, api, login, logout, token } from "./api";
import { LabelCanvas, Tool, shapePoints } from "./canvas";
import { Conflict, Doc } from "./doc";
import { jobsList, modelsView, prelabelPanel, trainPanel } from "./assist";
import { el, toast } from "./dom";

const app = document.getElementById("app")!;
let me: Me | null = null;

// --- smart tools: the hook the OCR, segmentation and detection features plug into ----

export interface SmartToolContext {
  imageId: number;
  selected: Annotation | null;
  doc: Doc;
}

export interface SmartTool {
  name: string;
  key: string;
  available(ctx: SmartToolContext): boolean;
  run(ctx: SmartToolContext): Promise<string>;
}

const smartTools: SmartTool[] = [];

export function registerSmartTool(tool: SmartTool): void {
  smartTools.push(tool);
}

registerSmartTool({
  name: "Re-recognize text",
  key: "t",
  available: (c) => c.selected !== null && ["quad", "box", "polygon"].includes(c.selected.shape.type),
  async run(c) {
    const a = c.selected!;
    const pts = shapePoints(a.shape);
    const quad: XY[] = pts.length === 4 ? pts : boundingQuad(pts);
    const r = await api.recognize(c.imageId, quad);
    await c.doc.update(a.id, { text: r.text });
    return `read "${r.text}" (score ${r.score.toFixed(2)})`;
  },
});

function boundingQuad(pts: XY[]): XY[] {
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const [x1, y1, x2, y2] = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
}

// --- views ---------------------------------------------------------------------------

function loginView(): void {
  const user = el("input", { id: "username", autocomplete: "username", required: "" });
  const pass = el("input", { id: "password", type: "password", autocomplete: "current-password", required: "" });
  const error = el("p", { class: "error", id: "login-error" });
  const form = el("form", { class: "login" },
    el("h1", {}, "LabelPilot"),
    el("label", {}, "Username", user), el("label", {}, "Password", pass),
    el("button", { type: "submit" }, "Sign in"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await login(user.value, pass.value);
      me = await api.me();
      location.hash = "#/";
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.detail : String(err);
    }
  });
  app.replaceChildren(form);
  user.focus();
}

function header(project?: Project): HTMLElement {
  const out = el("button", { id: "logout" }, "Sign out");
  out.onclick = async () => {
    await logout();
    location.hash = "#/login";
  };
  return el("header", {},
    el("a", { href: "#/" }, "LabelPilot"),
    el("span", { class: "project" }, project ? `${project.name} (${project.task})` : ""),
    el("a", { href: "#/images" }, "Images"),
    el("a", { href: "#/models" }, "Models"),
    el("span", { class: "who" }, me ? `${me.username} · ${me.role}` : ""), out);
}

async function overviewView(): Promise<void> {
  const project = await api.project();
  const s = project.stats;
  const table = el("table", { class: "stats" });
  for (const [group, title] of [["images_by_review_state", "Images by review state"],
    ["images_by_split", "Images by split"], ["annotations_by_status", "Annotations by status"],
    ["annotations_by_label", "Annotations by label"]] as const) {
    table.append(el("tr", {}, el("th", { colspan: "2" }, title)));
    for (const [k, v] of Object.entries(s[group] as Record<string, number>)) {
      table.append(el("tr", {}, el("td", {}, k), el("td", {}, String(v))));
    }
  }
  const start = el("button", { id: "start" }, "Start labeling (next image)");
  start.onclick = () => openNext();
  const actions = el("div", { class: "actions" }, start);
  const panels: HTMLElement[] = [];
  let prelabel: ReturnType<typeof prelabelPanel> | null = null;
  const jobs = jobsList((j) => {
    // a finished training run is a new model to pre-label with
    if (j.kind.startsWith("train-") && j.status === "done") prelabel?.refresh();
  });
  if (me && me.role !== "annotator") {
    prelabel = prelabelPanel(project, () => jobs.refresh());
    panels.push(prelabel.root);
  }
  const train = me?.role === "admin" ? trainPanel(project, () => jobs.refresh()) : null;
  if (train) panels.push(train);
  app.replaceChildren(header(project), el("main", { class: "overview" },
    el("h2", {}, `${s.images} images, ${s.annotations} annotations`), actions,
    el("div", { class: "panels" }, ...panels), table, el("h3", {}, "Jobs"), jobs.root));
}

async function openNext(): Promise<void> {
  const img = await api.next();
  if (!img) {
    toast("Nothing left to label.");
    return;
  }
  location.hash = `#/label/${img.id}`;
}

// The image grid: only the rows in view exist in the DOM, so 10,000 images scroll freely.
async function imagesView(): Promise<void> {
  const project = await api.project();
  const filters = { review_state: "", split: "", label: "", source: "", low_confidence: "", sort: "" };
  const select = (name: keyof typeof filters, options: string[]) => {
    const first = name === "sort" ? "sort by id" : `any ${name.replace("_", " ")}`;
    const s = el("select", { name }, el("option", { value: "" }, first),
      ...options.map((o) => el("option", { value: o }, o)));
    s.onchange = () => {
      filters[name] = s.value;
      load();
    };
    return s;
  };
  const count = el("span", { id: "count" });
  const grid = el("div", { class: "grid", id: "grid" });
  const spacer = el("div", { class: "spacer" });
  grid.append(spacer);
  app.replaceChildren(header(project), el("div", { class: "filters" },
    select("review_state", ["new", "prelabeled", "in_review", "done"]),
    select("split", ["train", "val", "test", "unassigned"]),
    select("label", project.labels),
    select("source", Object.keys(project.stats.annotations_by_source ?? {})),
    select("low_confidence", ["true", "false"]), select("sort", ["file_name", "review_state"]),
    count), grid);

  let images: Image[] = [];
  let total = 0;
  const CELL = 180;
  const render = () => {
    const cols = Math.max(1, Math.floor(grid.clientWidth / CELL));
    const rows = Math.ceil(total / cols);
    spacer.style.height = `${rows * CELL}px`;
    const first = Math.floor(grid.scrollTop / CELL);
    const last = Math.min(rows, first + Math.ceil(grid.clientHeight / CELL) + 1);
    const cells: HTMLElement[] = [];
    for (let r = first; r < last; r++) {
      for (let c = 0; c < cols; c++) {
        const img = images[r * cols + c];
        if (!img) continue;
        const cell = el("a", { class: `cell ${img.review_state}`, href: `#/label/${img.id}`,
          style: `top:${r * CELL}px;left:${c * CELL}px` },
          el("img", { src: `/api/images/${img.id}/thumbnail?size=160`, loading: "lazy", alt: "" }),
          el("span", {}, img.file_name));
        cells.push(cell);
      }
    }
    grid.replaceChildren(spacer, ...cells);
  };
  const load = async () => {
    const q: Record<string, string> = { limit: "1000" };
    for (const [k, v] of Object.entries(filters)) if (v) q[k] = v;
    const first = await api.images(q);
    images = first.data;
    total = first.count;
    count.textContent = `${total} images`;
    grid.scrollTop = 0;
    render();
    // the rest arrives in the background, a page at a time
    for (let offset = images.length; offset < total; offset += 1000) {
      const page = await api.images({ ...q, offset: String(offset) });
      images = images.concat(page.data);
      render();
    }
  };
  grid.onscroll = () => requestAnimationFrame(render);
  window.onresize = render;
  await load();
  (window as any).__gridReady = performance.now();
}

const HELP: [string, string][] = [
  ["V / Esc", "select tool (Esc also cancels drawing)"], ["B", "draw a box"], ["P", "draw a polygon (double-click or Enter closes it)"],
  ["Q", "draw a quad (4 clicks)"], ["Del", "delete the selected annotation"], ["E", "edit the transcription"],
  ["Tab", "select the next annotation"], ["L", "jump to the next low-confidence proposal"],
  ["Enter", "accept the selected proposal"], ["R", "reject the selected one"], ["A", "accept all proposals"],
  ["D", "mark the image done and open the next"], ["N / →", "next image"], ["←", "previous image"],
  ["S", "smart mask: click the object (right-click: not the object), or drag a box; Tab shows the model's alternatives, Enter keeps the mask, Backspace takes back a click"],
  ["K", "click to box: click an object (the detector's box under it, else the mask's box); a second click corrects it; Enter keeps it"],
  ["T", "re-recognize the selected text line"], ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["F / 1", "fit / zoom 1:1"], ["Wheel, Shift+drag", "zoom, pan"], ["?", "this help"],
];

async function labelView(imageId: number): Promise<void> {
  (window as any).__editorReady = undefined;
  const [project, image] = await Promise.all([api.project(), api.image(imageId)]);
  const status = el("span", { id: "save-status" }, "");
  const latency = el("span", { id: "tool-latency" }, "");
  const labelSelect = el("select", { id: "label" }, ...project.labels.map((l) => el("option", { value: l }, l)));
  const toolButtons: Record<Tool, HTMLButtonElement> = {
    select: el("button", { "data-tool": "select" }, "Select (V)"),
    box: el("button", { "data-tool": "box" }, "Box (B)"),
    polygon: el("button", { "data-tool": "polygon" }, "Polygon (P)"),
    quad: el("button", { "data-tool": "quad" }, "Quad (Q)"),
    smart: el("button", { "data-tool": "smart" }, "Smart mask (S)"),
    clickbox: el("button", { "data-tool": "clickbox" }, "Click to box (K)"),
  };
  const list = el("ol", { class: "ann-list", id: "ann-list" });
  const textInput = el("input", { id: "transcription", placeholder: "transcription", disabled: "" });
  const stage = el("div", { class: "stage" });
  const side = el("aside", {},
    el("h3", {}, image.file_name), el("p", {}, `${image.width}x${image.height} · ${image.review_state}`),
    el("label", {}, "Class ", labelSelect), el("label", {}, "Text ", textInput), list);
  // the smart mask tool's model: every interactive segmenter of the workspace
  const smartModel = el("select", { id: "smart-model", title: "smart mask model" });
  api.models().then((ms) => {
    for (const m of ms.filter((x) => x.interactive)) {
      const o = el("option", { value: m.name }, `${m.name} (${m.kind})`);
      if (m.default) o.selected = true;
      smartModel.appendChild(o);
    }
  }).catch(() => undefined);
  smartModel.onchange = () => {
    smart = null;
    smartSeq++;
    if (canvas.smartClicks.length || canvas.smartBox) void askMask(canvas.smartClicks, canvas.smartBox);
    canvas.canvas.focus();
  };
  const toolbar = el("div", { class: "toolbar" }, ...Object.values(toolButtons), smartModel, status, latency);
  app.replaceChildren(header(project), toolbar, el("div", { class: "editor" }, stage, side));

  let conflictOpen = false;
  const doc = new Doc(imageId, () => refresh(), (c) => showConflict(c));
  const canvas = new LabelCanvas(stage, {
    select: (id) => {
      canvas.selected = id;
      refresh();
    },
    drawn: (shape: Shape) => {
      const isText = shape.type === "quad" || project.task === "ocr";
      doc.create({ label: labelSelect.value, shape, text: isText ? "" : null, attributes: {}, group: null,
        status: me?.role === "annotator" ? "edited" : "accepted" }).then(() => {
        const last = doc.anns[doc.anns.length - 1];
        if (last) canvas.selected = last.id;
        refresh();
      });
    },
    moved: (id, shape) => doc.update(id, { shape }),
    prompt: (clicks, box) => void askMask(clicks, box),
  });

  // --- the smart mask tool: every click or box asks the model again, with the mask so far
  let smart: SegmentResult | null = null;
  let smartSeq = 0;
  let clickBoxAnswer: ClickBoxResult | null = null;
  async function askMask(clicks: SmartClick[], box: number[] | null): Promise<void> {
    const seq = ++smartSeq;
    if (canvas.tool === "clickbox") {
      const t0 = performance.now();
      try {
        const r = await api.clickBox(imageId, clicks);
        if (seq !== smartSeq) return;
        clickBoxAnswer = r;
        canvas.setSmartPreview([{ type: "box", xyxy: r.box }]);
        latency.textContent = `${r.source.replace(/^model:/, "")} (${r.method})` +
          `${r.label ? ` ${r.label}` : ""} ${r.score.toFixed(2)}, ${Math.round(performance.now() - t0)} ms`;
      } catch (e) {
        if (seq !== smartSeq) return;
        latency.textContent = e instanceof ApiError ? e.detail : String(e);
      }
      return;
    }
    const best = smart?.proposals[0];
    const t0 = performance.now();
    try {
      const r = await api.segment(imageId, {
        model: smartModel.value || undefined, clicks, box, tolerance: 1,
        previous: best && clicks.length ? { type: "mask", rle: best.rle, size: [image.height, image.width] } : null,
      });
      if (seq !== smartSeq) return; // a newer prompt is on its way
      smart = r;
      const p = r.proposals[0];
      canvas.setSmartPreview(p ? p.shapes : null);
      latency.textContent = `${r.model}: quality ${p ? p.quality.toFixed(2) : "-"}, ` +
        `${Math.round(performance.now() - t0)} ms` + (r.warnings.length ? ` · ${r.warnings.join("; ")}` : "");
    } catch (e) {
      if (seq !== smartSeq) return;
      latency.textContent = e instanceof ApiError ? e.detail : String(e);
    }
  }

  async function keepBox(): Promise<void> {
    const r = clickBoxAnswer;
    if (!r) return;
    const label = r.label && project.labels.includes(r.label) ? r.label : labelSelect.value;
    await doc.create({ label, shape: { type: "box", xyxy: r.box }, text: null, attributes: {},
      group: null, status: "edited", source: r.source });
    clickBoxAnswer = null;
    smartSeq++;
    canvas.clearSmart();
    refresh();
  }

  async function keepMask(): Promise<void> {
    const p = smart?.proposals[0];
    if (!smart || !p || !p.shapes.length) return;
    const source = smart.source;
    for (const shape of p.shapes) {
      await doc.create({ label: labelSelect.value, shape, text: null, attributes: {}, group: null,
        status: "edited", source });
    }
    smart = null;
    smartSeq++;
    canvas.clearSmart();
    refresh();
  }
  (window as any).__canvas = canvas;
  (window as any).__doc = doc;
  for (const [t, b] of Object.entries(toolButtons)) b.onclick = () => setTool(t as Tool);

  function setTool(t: Tool): void {
    canvas.setTool(t);
    for (const [k, b] of Object.entries(toolButtons)) b.classList.toggle("active", k === t);
  }

  function selectedAnn(): Annotation | null {
    return canvas.selected === null ? null : doc.byId(canvas.selected) ?? null;
  }

  function refresh(): void {
    canvas.setAnnotations(doc.anns);
    status.textContent = doc.saving ? "saving…" : doc.lastError ? `error: ${doc.lastError}` : "saved";
    const sel = selectedAnn();
    textInput.disabled = !sel;
    if (document.activeElement !== textInput) textInput.value = sel?.text ?? "";
    if (sel) labelSelect.value = sel.label;
    list.replaceChildren(...doc.anns.map((a) => {
      const item = el("li", { class: `${a.status}${a.id === canvas.selected ? " selected" : ""}`,
        "data-id": String(a.id) },
        el("span", { class: "lbl" }, a.label), " ",
        el("span", { class: "txt" }, a.text ?? ""), " ",
        el("span", { class: "meta" }, `${a.status}${a.score !== null ? ` ${a.score.toFixed(2)}` : ""} v${a.version}`));
      item.onclick = () => {
        canvas.selected = a.id;
        refresh();
      };
      return item;
    }));
  }

  function showConflict(c: Conflict): void {
    conflictOpen = true;
    const theirs = c.theirs;
    const dlg = el("div", { class: "dialog", id: "conflict", role: "dialog" },
      el("h3", {}, "Someone else changed this annotation"),
      el("p", {}, theirs ? `Now: ${theirs.label} "${theirs.text ?? ""}" (${theirs.status}, v${theirs.version}, by ${theirs.updated_by ?? "?"})`
        : "It was deleted."),
      el("p", {}, `Your change: ${JSON.stringify(c.mine)}`));
    const keepTheirs = el("button", { id: "keep-theirs" }, "Keep theirs");
    const keepMine = el("button", { id: "keep-mine" }, "Apply mine on top");
    keepTheirs.onclick = () => close("theirs");
    keepMine.onclick = () => close("mine");
    dlg.append(keepTheirs, keepMine);
    document.body.append(dlg);
    keepMine.focus();
    function close(choice: "mine" | "theirs"): void {
      dlg.remove();
      conflictOpen = false;
      c.resolve(choice);
    }
  }

  function toggleHelp(): void {
    const open = document.getElementById("help");
    if (open) {
      open.remove();
      return;
    }
    const t = el("table", {}, ...HELP.map(([k, v]) => el("tr", {}, el("td", {}, el("kbd", {}, k)), el("td", {}, v))));
    document.body.append(el("div", { class: "dialog", id: "help" }, el("h3", {}, "Keyboard"), t));
  }

  async function runTool(tool: SmartTool): Promise<void> {
    const ctx = { imageId, selected: selectedAnn(), doc };
    if (!tool.available(ctx)) {
      toast(`${tool.name}: select a text line first`);
      return;
    }
    const t0 = performance.now();
    try {
      const msg = await tool.run(ctx);
      latency.textContent = `${tool.name}: ${Math.round(performance.now() - t0)} ms, ${msg}`;
    } catch (e) {
      toast(e instanceof ApiError ? e.detail : String(e), "error");
    }
  }

  async function go(delta: 1 | -1): Promise<void> {
    await doc.idle();
    if (delta === 1) return openNext();
    const prev = await api.images({ limit: "1", offset: "0" });
    const all = await api.images({ limit: "1000" });
    const ids = all.data.map((i) => i.id);
    const at = ids.indexOf(imageId);
    const target = at > 0 ? ids[at - 1] : prev.data[0]?.id;
    if (target !== undefined) location.hash = `#/label/${target}`;
  }

  textInput.addEventListener("keydown", (e) => {
    e.stopPropagation();
    if (e.key === "Enter" || e.key === "Escape") {
      // Enter keeps the edit (leaving the field fires one `change`, which saves it);
      // Escape puts the old text back first, so nothing changes.
      if (e.key === "Escape") textInput.value = selectedAnn()?.text ?? "";
      textInput.blur();
      canvas.canvas.focus();
    }
  });
  textInput.addEventListener("change", () => {
    const sel = selectedAnn();
    if (sel && textInput.value !== (sel.text ?? "")) doc.update(sel.id, { text: textInput.value });
  });
  labelSelect.onchange = () => {
    const sel = selectedAnn();
    if (sel) doc.update(sel.id, { label: labelSelect.value });
  };

  const onKey = async (e: KeyboardEvent) => {
    if (!document.body.contains(stage)) {
      window.removeEventListener("keydown", onKey);
      return;
    }
    if (conflictOpen || (e.target instanceof HTMLInputElement) || (e.target instanceof HTMLSelectElement)) return;
    const k = e.key;
    const sel = selectedAnn();
    const reviewer = me?.role !== "annotator";
    if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "z") {
      e.preventDefault();
      await (e.shiftKey ? doc.redo() : doc.undo());
      return;
    }
    if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "y") {
      e.preventDefault();
      await doc.redo();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tool = smartTools.find((t) => t.key === k.toLowerCase());
    if (tool) {
      e.preventDefault();
      await runTool(tool);
      return;
    }
    switch (k) {
      case "?": toggleHelp(); break;
      case "Escape": smart = null; smartSeq++; canvas.cancelDrawing(); setTool("select"); document.getElementById("help")?.remove(); break;
      case "v": case "V": setTool("select"); break;
      case "b": case "B": setTool("box"); break;
      case "p": case "P": setTool("polygon"); break;
      case "q": case "Q": setTool("quad"); break;
      case "f": case "F": canvas.fit(); break;
      case "1": canvas.oneToOne(); break;
      case "Delete": case "Backspace":
        if (canvas.smartTool) {
          if (!canvas.undoSmart()) { smart = null; clickBoxAnswer = null; smartSeq++; }
          break;
        }
        if (sel) await doc.remove(sel.id);
        break;
      case "s": case "S": setTool("smart"); break;
      case "k": case "K": setTool("clickbox"); break;
      case "e": case "E":
        if (sel) {
          e.preventDefault();
          textInput.focus();
          textInput.select();
        }
        break;
      case "Tab": {
        e.preventDefault();
        if (canvas.tool === "smart" && smart && smart.proposals.length > 1) {
          // the model's alternatives (an ambiguous click): show the next one
          smart.proposals.push(smart.proposals.shift()!);
          const p = smart.proposals[0];
          canvas.setSmartPreview(p.shapes);
          latency.textContent = `${smart.model}: alternative, quality ${p.quality.toFixed(2)}`;
          break;
        }
        if (!doc.anns.length) break;
        const i = doc.anns.findIndex((a) => a.id === canvas.selected);
        canvas.selected = doc.anns[(i + (e.shiftKey ? -1 + doc.anns.length : 1)) % doc.anns.length].id;
        refresh();
        break;
      }
      case "l": case "L": {
        const low = doc.anns.filter((a) => a.status === "predicted" && (a.score ?? 1) < 0.8);
        if (!low.length) {
          toast("No low-confidence proposals left on this image.");
          break;
        }
        const i = low.findIndex((a) => a.id === canvas.selected);
        canvas.selected = low[(i + 1) % low.length].id;
        refresh();
        break;
      }
      case "Enter":
        if (canvas.tool === "polygon") canvas.finishPolygon();
        else if (canvas.tool === "smart") await keepMask();
        else if (canvas.tool === "clickbox") await keepBox();
        else if (sel && reviewer) await doc.update(sel.id, { status: "accepted" });
        break;
      case "r": case "R":
        if (sel && reviewer) await doc.update(sel.id, { status: "rejected" });
        break;
      case "a": case "A":
        if (reviewer) {
          await doc.idle();
          const r = await api.bulk(imageId, "accepted", doc.anns.filter((a) => a.status === "predicted").map((a) => a.id));
          await doc.load();
          toast(`accepted ${r.changed}`);
        }
        break;
      case "d": case "D":
        if (reviewer) {
          await doc.idle();
          await api.setImage(imageId, { review_state: "done" });
          await openNext();
        }
        break;
      case "n": case "N": case "ArrowRight": await go(1); break;
      case "ArrowLeft": await go(-1); break;
      default: return;
    }
  };
  window.addEventListener("keydown", onKey);
  await canvas.loadImage(`/api/images/${imageId}/file`);
  await doc.load();
  setTool("select");
  // the segmentation embedding of this image starts now, before the first smart click
  if (project.task === "segment") api.prepareSegment(imageId).catch(() => undefined);
  canvas.canvas.focus();
  (window as any).__editorReady = performance.now();
}

async function route(): Promise<void> {
  const hash = location.hash || "#/";
  if (!token() && hash !== "#/login") {
    location.hash = "#/login";
    return;
  }
  try {
    if (hash === "#/login") return loginView();
    if (!me) me = await api.me();
    const m = hash.match(/^#\/label\/(\d+)$/);
    if (m) return await labelView(Number(m[1]));
    if (hash === "#/images") return await imagesView();
    if (hash === "#/models") {
      app.replaceChildren(await modelsView(header(await api.project())));
      return;
    }
    return await overviewView();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    app.replaceChildren(el("p", { class: "error" }, e instanceof ApiError ? e.detail : String(e)));
  }
}

window.addEventListener("hashchange", route);
route();
