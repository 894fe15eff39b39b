// LabelPilot's browser UI: sign-in, overview, image grid and the router; the labeling
// editor is editor.ts, its smart tools plug in through tools.ts, the model side is assist.ts.
// Every piece of user text goes into the page through textContent, never as HTML.

import { accountView, usersView } from "./account";
import { classesPanel } from "./classes";
import { ApiError, Image, Me, Project, api, errorText, login, logout, token } from "./api";
import { rememberList } from "./review";
import { listToSplit, splitsPanel } from "./splits";
import { exportPanel, importPanel, uploadZone } from "./transfer";
import { jobsList, modelsView, prelabelPanel, trainPanel } from "./assist";
import { el } from "./dom";
import { labelView, openNext } from "./editor";

const app = document.getElementById("app")!;
let me: Me | null = null;

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
      error.textContent = errorText(err);
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
    ...(me?.role === "admin" ? [el("a", { href: "#/users" }, "Users")] : []),
    el("a", { class: "who", href: "#/account", title: "change your password" },
      me ? `${me.username} · ${me.role}` : ""), out);
}

/** The counts table, filled (again) from the project's stats. */
function fillStats(table: HTMLElement, headline: HTMLElement, project: Project): void {
  const s = project.stats;
  headline.textContent = `${s.images} images, ${s.annotations} annotations`;
  table.replaceChildren();
  for (const [group, title] of [["images_by_review_state", "Images by review state"],
    ["images_by_split", "Images by split"], ["annotations_by_status", "Annotations by status"],
    ["annotations_by_label", "Annotations by label"]] as const) {
    table.append(el("tr", {}, el("th", { colspan: "2" }, title)));
    for (const [k, v] of Object.entries(s[group] as Record<string, number>)) {
      table.append(el("tr", {}, el("td", {}, k), el("td", {}, String(v))));
    }
  }
}

async function overviewView(): Promise<void> {
  const at = location.hash;
  const project = await api.project();
  // drawn again after a change (a class renamed): not over a view opened meanwhile
  if (location.hash !== at) return;
  const table = el("table", { class: "stats" });
  const headline = el("h2", { id: "headline" });
  fillStats(table, headline, project);
  const start = el("button", { id: "start" }, "Start labeling (next image)");
  start.onclick = () => openNext();
  const actions = el("div", { class: "actions" }, start);
  // a first-run hint until the first image is done
  const byState = project.stats.images_by_review_state as Record<string, number>;
  if (!byState.done) {
    const proposals = (byState.prelabeled ?? 0) + (byState.in_review ?? 0);
    actions.append(el("p", { class: "hint", id: "first-run" },
      (proposals ? `${proposals} image${proposals === 1 ? " has" : "s have"} proposals to review. ` : "") +
      "“Start labeling” opens the next image; in the editor Enter accepts the selected " +
      "proposal, R rejects it, D marks the image done, and ? lists every key."));
  }
  const panels: HTMLElement[] = [];
  let prelabel: ReturnType<typeof prelabelPanel> | null = null;
  const jobs = jobsList((j) => {
    // a finished job changes the counts (and what is left to pre-label); a finished
    // training run is a new model to pre-label with
    api.project().then((p) => fillStats(table, headline, p)).catch(() => undefined);
    void prelabel?.refresh();
  });
  if (me && me.role !== "annotator") {
    prelabel = prelabelPanel(project, () => jobs.refresh());
    panels.push(prelabel.root);
  }
  const train = me?.role === "admin" ? trainPanel(project, () => jobs.refresh()) : null;
  if (train) panels.push(train);
  if (me?.role === "admin") panels.push(classesPanel(project, () => void overviewView()));
  if (me && me.role !== "annotator") {
    panels.push(importPanel(() => jobs.refresh()));
    panels.push(exportPanel(() => jobs.refresh()));
    panels.push(splitsPanel(() => {
      api.project().then((p) => fillStats(table, headline, p)).catch(() => undefined);
    }));
  }
  // the jobs come first: a long class map or many panels never push them out of view
  app.replaceChildren(header(project), el("main", { class: "overview" },
    headline, actions, el("h3", {}, "Jobs"), jobs.root,
    el("div", { class: "panels" }, ...panels), table));
}

// The image grid: only the rows in view exist in the DOM, so 10,000 images scroll freely.
async function imagesView(): Promise<void> {
  const project = await api.project();
  const filters = { review_state: "", split: "", label: "", source: "", low_confidence: "", q: "", sort: "" };
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
  // search: file names and transcriptions, asked once typing pauses
  const search = el("input", { id: "search", type: "search", placeholder: "search names and text",
    "aria-label": "search file names and transcriptions" });
  let typing = 0;
  search.oninput = () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => {
      filters.q = search.value.trim();
      void load();
    }, 250);
  };
  const grid = el("div", { class: "grid", id: "grid" });
  const spacer = el("div", { class: "spacer" });
  grid.append(spacer);
  app.replaceChildren(header(project), uploadZone(() => void load()), el("div", { class: "filters" },
    select("review_state", ["new", "prelabeled", "in_review", "submitted", "done"]),
    select("split", ["train", "val", "test", "unassigned"]),
    select("label", project.labels),
    select("source", Object.keys(project.stats.annotations_by_source ?? {})),
    select("low_confidence", ["true", "false"]), select("sort", ["file_name", "review_state"]),
    search, count, ...(me && me.role !== "annotator" ? [listToSplit(() => images.map((i) => i.id), () => void load())] : [])),
    grid);

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
          el("img", { src: `/api/images/${img.id}/thumbnail?size=256`, loading: "lazy", alt: "" }),
          el("span", {}, img.file_name));
        cells.push(cell);
      }
    }
    grid.replaceChildren(spacer, ...cells);
  };
  const load = async () => {
    const list: Record<string, string> = {};
    for (const [k, v] of Object.entries(filters)) if (v) list[k] = v;
    rememberList(list);  // the editor's next / previous walk this list
    const q: Record<string, string> = { ...list, limit: "1000" };
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

async function route(): Promise<void> {
  const hash = location.hash || "#/";
  if (!token() && hash !== "#/login") {
    location.hash = "#/login";
    return;
  }
  try {
    if (hash === "#/login") return loginView();
    if (!me) me = await api.me();
    if (me.must_change_password || hash === "#/account") {
      // a password someone else chose is changed before anything else
      const forced = me.must_change_password;
      app.replaceChildren(accountView(me, forced ? null : header(), (now) => {
        me = now;
        location.hash = "#/";
        if (forced && hash === "#/") void route();
      }));
      return;
    }
    if (hash === "#/users" && me.role === "admin") {
      app.replaceChildren(await usersView(header(await api.project()), me));
      return;
    }
    const m = hash.match(/^#\/label\/(\d+)$/);
    if (m) return await labelView(app, header, me, Number(m[1]));
    if (hash === "#/images") return await imagesView();
    if (hash === "#/models") {
      app.replaceChildren(await modelsView(header(await api.project())));
      return;
    }
    return await overviewView();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    app.replaceChildren(el("p", { class: "error" }, errorText(e)));
  }
}

window.addEventListener("hashchange", route);
route();
