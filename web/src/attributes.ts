// Attributes and tags in the editor: the selected shape's attributes as its class declares
// them (checkbox, select, text, number), and the image's classification tags.

import { Annotation, AttributeSpec, Project, api, errorText } from "./api";
import { el, toast } from "./dom";
import type { Editor } from "./editor";

/** A new shape of class `label` starts with its class's defaults. */
export function defaultsFor(project: Project, label: string): Record<string, unknown> {
  return Object.fromEntries((project.label_attributes?.[label] ?? []).map((s) => [s.name, s.default]));
}

/** Inputs take their own keys: typing is not the editor's shortcuts. */
function ownKeys<T extends HTMLElement>(input: T): T {
  input.addEventListener("keydown", (e) => e.stopPropagation());
  return input;
}

/** The selected shape's attributes; drawn again only when the selection, its class or its
 * version changes (never under the cursor of someone typing). */
export function attributePanel(ed: Editor): { root: HTMLElement; update(sel: Annotation | null): void } {
  const root = el("div", { class: "attributes", id: "attributes" });
  let shown = "";
  const update = (sel: Annotation | null) => {
    const schema = sel ? ed.project.label_attributes?.[sel.label] ?? [] : [];
    const key = sel && schema.length ? `${sel.id}:${sel.version}:${sel.label}` : "";
    if (key === shown) return;
    shown = key;
    if (!sel || !schema.length) return void root.replaceChildren();
    root.replaceChildren(el("h4", {}, `${sel.label} attributes`),
      ...schema.map((spec) => field(ed, sel, spec)));
  };
  return { root, update };
}

function field(ed: Editor, a: Annotation, spec: AttributeSpec): HTMLElement {
  const value = spec.name in a.attributes ? a.attributes[spec.name] : spec.default;
  const save = (v: unknown) => void ed.doc.update(a.id, { attributes: { ...a.attributes, [spec.name]: v } });
  const name = `attr-${spec.name}`;
  let input: HTMLInputElement | HTMLSelectElement;
  if (spec.type === "checkbox") {
    const box = el("input", { type: "checkbox", "data-attr": spec.name });
    box.checked = value === true;
    box.onchange = () => save(box.checked);
    input = box;
  } else if (spec.type === "select") {
    const sel = el("select", { "data-attr": spec.name }, ...(spec.values ?? []).map((v) => el("option", { value: v }, v)));
    sel.value = String(value ?? "");
    sel.onchange = () => save(sel.value);
    input = sel;
  } else {
    const text = el("input", { type: spec.type === "number" ? "number" : "text", "data-attr": spec.name,
      value: String(value ?? "") });
    if (spec.min !== undefined) text.min = String(spec.min);
    if (spec.max !== undefined) text.max = String(spec.max);
    text.onchange = () => {
      if (spec.type !== "number") return save(text.value);
      const n = Number(text.value);
      if (text.value.trim() === "" || !Number.isFinite(n)) return toast(`${spec.name} needs a number.`, "error");
      save(n);
    };
    input = text;
  }
  input.setAttribute("aria-label", `${spec.name} of the selected shape`);
  input.id = name;
  return el("label", { class: "attr" }, `${spec.name} `, ownKeys(input));
}

/** The image's tags: remove one with its ×, add with Enter (known tags suggested). */
export function tagsField(ed: Editor): HTMLElement {
  const list = el("span", { class: "tags", id: "tags" });
  const options = el("datalist", { id: "known-tags" },
    ...(ed.project.tags ?? []).map((t) => el("option", { value: t })));
  const input = ownKeys(el("input", { id: "add-tag", placeholder: "add a tag", list: "known-tags",
    "aria-label": "add a tag to the image" }));
  const save = async (tags: string[]) => {
    try {
      const img = await api.setImage(ed.imageId, { tags });
      ed.image.tags = img.tags;
      draw();
    } catch (e) {
      toast(errorText(e), "error");
    }
  };
  const draw = () => list.replaceChildren(...(ed.image.tags ?? []).map((t) => {
    const x = el("button", { class: "untag", title: `remove ${t}`, "aria-label": `remove tag ${t}` }, "×");
    x.onclick = () => void save(ed.image.tags.filter((o) => o !== t));
    return el("span", { class: "tag", "data-tag": t }, t, x);
  }));
  input.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !input.value.trim()) return;
    const t = input.value.trim();
    input.value = "";
    if (!ed.image.tags.includes(t)) void save([...ed.image.tags, t]);
  });
  draw();
  return el("div", { class: "image-tags" }, "Tags ", list, input, options);
}
