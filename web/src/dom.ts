// Small DOM helpers shared by the views. User text goes in through text nodes, never as HTML.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

export function toast(message: string, kind: "info" | "error" = "info"): void {
  const t = el("div", { class: `toast ${kind}`, role: "status" }, message);
  document.body.append(t);
  setTimeout(() => t.remove(), 4000);
}
