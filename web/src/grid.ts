// The image grid: filters (kept for the session: the editor's next / previous walk the
// same list), search, upload, and the list's actions (split, assign). Only the rows in
// view exist in the DOM, so 10,000 images scroll freely.

import { Image, Me, Project, api } from "./api";
import { el } from "./dom";
import { currentList, rememberList } from "./review";
import { listToSplit } from "./splits";
import { UNASSIGNED, assignControl } from "./team";
import { uploadZone } from "./transfer";

const FILTERS = ["review_state", "split", "label", "source", "low_confidence", "assignee", "tag", "q", "sort"] as const;
type Filter = typeof FILTERS[number];

export async function imagesView(app: HTMLElement, header: (p: Project) => HTMLElement,
                                 me: Me | null): Promise<void> {
  const project = await api.project();
  const reviewer = !!me && me.role !== "annotator";
  // the list last walked, so coming back from the editor shows the same images
  const kept = currentList();
  const filters = Object.fromEntries(FILTERS.map((f) => [f, kept[f] ?? ""])) as Record<Filter, string>;
  const select = (name: Filter, options: (string | [string, string])[]) => {
    const first = name === "sort" ? "queue order" : `any ${name.replace("_", " ")}`;
    const s = el("select", { name }, el("option", { value: "" }, first),
      ...options.map((o) => typeof o === "string" ? el("option", { value: o }, o)
        : el("option", { value: o[0] }, o[1])));
    s.value = filters[name];
    s.onchange = () => {
      filters[name] = s.value;
      void load();
    };
    return s;
  };
  const count = el("span", { id: "count" });
  // search: file names and transcriptions, asked once typing pauses
  const search = el("input", { id: "search", type: "search", placeholder: "search names and text",
    "aria-label": "search file names and transcriptions", value: filters.q });
  let typing = 0;
  search.oninput = () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => {
      filters.q = search.value.trim();
      void load();
    }, 250);
  };
  const people: [string, string][] = [[UNASSIGNED, "assigned to no one"]];
  if (me) people.unshift([me.username, "assigned to me"]);
  const assignee = select("assignee", people);
  if (reviewer) {
    void api.assignable().then((users) => {
      for (const u of users) {
        if (u.username !== me?.username) assignee.append(el("option", { value: u.username }, `assigned to ${u.username}`));
      }
      assignee.value = filters.assignee;
    }).catch(() => undefined);
  }
  const grid = el("div", { class: "grid", id: "grid" });
  const spacer = el("div", { class: "spacer" });
  grid.append(spacer);
  const ids = () => images.map((i) => i.id);
  app.replaceChildren(header(project), uploadZone(() => void load()), el("div", { class: "filters" },
    select("review_state", ["new", "prelabeled", "in_review", "submitted", "done"]),
    select("split", ["train", "val", "test", "unassigned"]),
    select("label", project.labels),
    select("source", Object.keys(project.stats.annotations_by_source ?? {})),
    select("low_confidence", ["true", "false"]), assignee,
    select("tag", project.tags ?? []), select("sort", [["id", "id"], "file_name", "review_state"]),
    search, count, ...(reviewer ? [listToSplit(ids, () => void load()),
      assignControl(ids, () => void load())] : [])),
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
          style: `top:${r * CELL}px;left:${c * CELL}px`, title: cellTitle(img) },
          el("img", { src: thumbnail(img), loading: "lazy", alt: "" }),
          el("span", {}, img.file_name),
          ...(img.queue_rank ? [el("b", { class: "rank", title: img.queue_reason?.reason ?? "" },
            `#${img.queue_rank}`)] : []));
        cells.push(cell);
      }
    }
    grid.replaceChildren(spacer, ...cells);
  };
  let generation = 0;
  const load = async () => {
    const mine = ++generation;
    const list: Record<string, string> = {};
    for (const [k, v] of Object.entries(filters)) if (v) list[k] = v;
    rememberList(list);  // the editor's next / previous walk this list
    const q: Record<string, string> = { ...list, limit: "1000" };
    const first = await api.images(q);
    if (mine !== generation) return;  // a newer filter's answer wins
    images = first.data;
    total = first.count;
    count.textContent = `${total} images`;
    grid.scrollTop = 0;
    render();
    // the rest arrives in the background, a page at a time
    for (let offset = images.length; offset < total; offset += 1000) {
      const page = await api.images({ ...q, offset: String(offset) });
      if (mine !== generation) return;
      images = images.concat(page.data);
      render();
    }
  };
  grid.onscroll = () => requestAnimationFrame(render);
  window.onresize = render;
  await load();
  (window as any).__gridReady = performance.now();
}

/** The grid's picture of an image: its thumbnail, with its labels drawn over it once it
 * has some (a new address whenever they change). */
function thumbnail(img: Image): string {
  const base = `/api/images/${img.id}/thumbnail?size=256`;
  return img.annotations && img.labels_version ? `${base}&shapes=1&v=${img.labels_version}` : base;
}

/** The cell's tooltip: state, split, who it is for, tags. */
function cellTitle(img: Image): string {
  return [img.file_name, img.review_state, img.split ?? "no split",
    img.queue_rank ? `chosen #${img.queue_rank} (${img.queue_reason?.strategy}): ${img.queue_reason?.reason}` : "",
    img.assignee ? `for ${img.assignee}` : "", img.tags?.length ? `tags: ${img.tags.join(", ")}` : ""]
    .filter(Boolean).join(" · ");
}
