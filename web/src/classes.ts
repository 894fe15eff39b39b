// The project's label classes (admins): add one, rename, merge one into another (its
// labels move), and give each a colour, which the editor draws it in.

import { Project, api, errorText } from "./api";
import { el, toast } from "./dom";


const OPEN_KEY = "labelpilot.classes-open";

export function classesPanel(project: Project, changed: () => void): HTMLElement {
  const counts = project.stats.annotations_by_label as Record<string, number>;
  const rows = project.labels.map((name) => {
    const color = el("input", { type: "color", value: project.label_colors[name] ?? "#2563eb",
      "aria-label": `colour of ${name}` });
    const rename = el("input", { class: "rename", value: name, "aria-label": `new name for ${name}` });
    const merge = el("select", { class: "merge", "aria-label": `merge ${name} into` },
      el("option", { value: "" }, "merge into…"),
      ...project.labels.filter((n) => n !== name).map((n) => el("option", { value: n }, n)));
    const apply = async (body: Record<string, string>, done: string) => {
      try {
        await api.changeLabel(name, body);
        toast(done);
        changed();
      } catch (e) {
        toast(errorText(e), "error");
      }
    };
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
      el("td", {}, String(counts[name] ?? 0)), el("td", {}, merge));
  });
  const add = el("input", { id: "add-class", placeholder: "new class" });
  add.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter" || !add.value.trim()) return;
    try {
      await api.addLabels([add.value.trim()]);
      toast(`${add.value.trim()} added.`);
      changed();
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
  const panel = el("details", { class: "panel", id: "classes-panel" },
    el("summary", {}, `Label classes (${project.labels.length})`),
    el("table", { class: "classes" },
      el("tr", {}, ...["colour", "name (Enter renames)", "labels", ""].map((h) => el("th", {}, h))),
      ...rows), add);
  // open or closed as the user left it, across the overview's redraws
  panel.open = sessionStorage.getItem(OPEN_KEY) === "1";
  panel.addEventListener("toggle", () => sessionStorage.setItem(OPEN_KEY, panel.open ? "1" : "0"));
  return panel;
}
