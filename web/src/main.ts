// LabelPilot's browser UI: sign-in, overview, image grid and the router; the labeling
// editor is editor.ts, its smart tools plug in through tools.ts, the model side is assist.ts.
// Every piece of user text goes into the page through textContent, never as HTML.

import { accountView, usersView } from "./account";
import { classesPanel } from "./classes";
import { ApiError, Me, Project, api, errorText, login, logout, token } from "./api";
import { imagesView } from "./grid";
import { splitsPanel } from "./splits";
import { queueActions } from "./team";
import { exportPanel, importPanel } from "./transfer";
import { jobsList, modelsView, prelabelPanel, trainPanel } from "./assist";
import { loopPanel, selectPanel } from "./active";
import { analyticsView } from "./analytics";
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
    ...(me && me.role !== "annotator" ? [el("a", { href: "#/analytics" }, "Analytics")] : []),
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
    ["images_by_split", "Images by split"], ["images_by_assignee", "Images by assignee"],
    ["annotations_by_status", "Annotations by status"],
    ["annotations_by_label", "Annotations by label"]] as const) {
    table.append(el("tr", {}, el("th", { colspan: "2" }, title)));
    for (const [k, v] of Object.entries((s[group] ?? {}) as Record<string, number>)) {
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
  const actions = el("div", { class: "actions" }, start, ...queueActions(project, me));
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
  let choose: ReturnType<typeof selectPanel> | null = null;
  const jobs = jobsList((j) => {
    // a finished job changes the counts (and what is left to pre-label); a finished
    // training run is a new model to pre-label with
    api.project().then((p) => fillStats(table, headline, p)).catch(() => undefined);
    void prelabel?.refresh();
    void choose?.refresh();
  });
  if (me && me.role !== "annotator") {
    prelabel = prelabelPanel(project, () => jobs.refresh());
    panels.push(prelabel.root);
    if (project.task === "ocr" || project.task === "detect" || project.task === "segment") {
      choose = selectPanel(project, () => jobs.refresh());
      panels.push(choose.root);
    }
  }
  const train = me?.role === "admin" ? trainPanel(project, () => jobs.refresh()) : null;
  if (train) panels.push(train);
  const loop = me?.role === "admin" ? loopPanel(project) : null;
  if (loop) panels.push(loop);
  if (me?.role === "admin") panels.push(classesPanel(project, overviewView));
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
    if (hash === "#/images") return await imagesView(app, header, me);
    if (hash === "#/analytics" && me.role !== "annotator") {
      app.replaceChildren(await analyticsView(header(await api.project())));
      return;
    }
    if (hash === "#/models") {
      app.replaceChildren(await modelsView(header(await api.project()), me));
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
