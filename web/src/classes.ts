// The project's label classes (admins): add one, rename, merge one into another (its
// labels move), give each a colour, which the editor draws it in, and the attributes its
// shapes carry.

import { AttributeSpec, Project, api, errorText } from "./api";
import { el, toast } from "./dom";


const OPEN_KEY = "labelpilot.classes-open";

/** `changed` draws the overview again; a change is toasted once that is done, so that
 * what one types next goes into the new panel, not one about to be replaced. */
export function classesPanel(project: Project, changed: () => Promise<void>): HTMLElement {
  const counts = project.stats.annotations_by_label as Record<string, number>;
  const saved = async (done: string) => {
    await changed().catch(() => undefined);  // saved even if the re-draw fails
    toast(done);
  };
  const rows = project.labels.map((name) => {
    const color = el("input", { type: "color", value: project.label_colors[name] ?? "#2563eb",
      "aria-label": `colour of ${name}` });
    const rename = el("input", { class: "rename", value: name, "aria-label": `new name for ${name}` });
    const merge = el("select", { class: "merge", "aria-label": `merge ${name} into` },
      el("option", { value: "" }, "merge into…"),
      ...project.labels.filter((n) => n !== name).map((n) => el("option", { value: n }, n)));
    const apply = async (body: Record<string, unknown>, done: string) => {
      try {
        await api.changeLabel(name, body);
        await saved(done);
      } catch (e) {
        toast(errorText(e), "error");
      }
    };
    const attrs = el("input", { class: "attr-spec", value: specText(project.label_attributes?.[name] ?? []),
      placeholder: "occluded:checkbox, colour:select=black|white", "aria-label": `attributes of ${name}` });
    attrs.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      try {
        const schema = parseSpec(attrs.value);
        void apply({ attributes: schema }, schema.length
          ? `${name} shapes carry ${schema.map((a) => a.name).join(", ")}.` : `${name} has no attributes.`);
      } catch (err) {
        toast(String((err as Error).message), "error");
      }
    });
    color.onchange = () => void apply({ color: color.value }, `${name} is drawn in ${color.value}.`);
    rename.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && rename.value.trim() && rename.value.trim() !== name) {
        void apply({ name: rename.value.trim() }, `${name} is now ${rename.value.trim()}.`);
      }
    });
    merge.onchange = () => {
      if (merge.value) void apply({ merge_into: merge.value }, `${name} merged into ${merge.value}.`);
    };
    return el("tr", { "data-label": name }, el("td", {}, color), el("td", {}, rename),
      el("td", {}, String(counts[name] ?? 0)), el("td", {}, merge), el("td", {}, attrs));
  });
  const add = el("input", { id: "add-class", placeholder: "new class" });
  add.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter" || !add.value.trim()) return;
    try {
      const added = add.value.trim();
      await api.addLabels([added]);
      await saved(`${added} added.`);
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
  // the project's name (the header shows it)
  const name = el("input", { id: "project-name", value: project.name, "aria-label": "project name" });
  name.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter" || !name.value.trim() || name.value.trim() === project.name) return;
    try {
      const renamed = name.value.trim();
      await api.renameProject(renamed);
      await saved(`The project is now ${renamed}.`);
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
  const panel = el("details", { class: "panel", id: "classes-panel" },
    el("summary", {}, `Project and label classes (${project.labels.length})`),
    el("label", { class: "row" }, "Project name (Enter saves) ", name),
    el("table", { class: "classes" },
      el("tr", {}, ...["colour", "name (Enter renames)", "labels", "", "attributes (Enter saves)"]
        .map((h) => el("th", {}, h))),
      ...rows), add);
  // open or closed as the user left it, across the overview's redraws
  panel.open = sessionStorage.getItem(OPEN_KEY) === "1";
  panel.addEventListener("toggle", () => sessionStorage.setItem(OPEN_KEY, panel.open ? "1" : "0"));
  return panel;
}

/** A class's attributes in one line: `occluded:checkbox, colour:select=black|white,
 * age:number=0..30, note:text` (the server checks and fills in the defaults). */
export function parseSpec(text: string): Record<string, unknown>[] {
  return text.split(",").map((p) => p.trim()).filter(Boolean).map((part) => {
    const m = part.match(/^([^:=]+):(checkbox|select|text|number)(?:=(.*))?$/);
    if (!m) throw new Error(`"${part}" is not name:type (checkbox, select=a|b, text, number=min..max)`);
    const [, name, type, rest] = m;
    const spec: Record<string, unknown> = { name: name.trim(), type };
    if (type === "select") spec.values = (rest ?? "").split("|").map((v) => v.trim()).filter(Boolean);
    if (type === "number" && rest) {
      const [lo, hi] = rest.split("..").map((v) => v.trim());
      if (lo) spec.min = Number(lo);
      if (hi) spec.max = Number(hi);
    }
    return spec;
  });
}

function specText(schema: AttributeSpec[]): string {
  return schema.map((a) => `${a.name}:${a.type}` + (a.type === "select" ? `=${(a.values ?? []).join("|")}`
    : a.type === "number" && (a.min !== undefined || a.max !== undefined) ? `=${a.min ?? ""}..${a.max ?? ""}` : ""))
    .join(", ");
}
