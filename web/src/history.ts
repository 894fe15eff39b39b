// An image's history in the editor: every change to its labels and its review state, who
// made it and when (the audit log), and the comments people left on it or on one shape.

import { AuditEntry, api, errorText } from "./api";
import { el, toast } from "./dom";

function when(at: string): string {
  const d = new Date(at);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
}

function what(e: AuditEntry): string {
  const a = e.after ?? {}, b = e.before ?? {};
  const on = e.annotation_id !== null ? ` #${e.annotation_id}` : "";
  switch (e.action) {
    case "create": return `drew${on} (${String(a.label ?? "")})`;
    case "delete": return `deleted${on} (${String(b.label ?? "")})`;
    case "update": {
      const changed = ["label", "text", "status", "shape", "attributes"].filter(
        (k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
      return `changed${on}: ${changed.map((k) => k === "shape" ? "shape"
        : k === "attributes" ? `attributes → ${JSON.stringify(a[k] ?? {})}`
        : `${k} ${JSON.stringify(b[k] ?? "")} → ${JSON.stringify(a[k] ?? "")}`).join(", ") || "nothing"}`;
    }
    case "accepted": case "rejected": return `${e.action}${on}`;
    case "review_state":
      return `review state ${String(b.review_state)} → ${String(a.review_state)}` +
        (a.comment ? `: "${String(a.comment)}"` : "");
    case "comment": return `commented${on}: "${String(a.text ?? "")}"`;
    case "assign": return `assigned to ${String(a.assignee ?? "no one")}` +
      (b.assignee ? ` (was ${String(b.assignee)})` : "");
    case "tags": return `tags: ${(a.tags as string[] | undefined)?.join(", ") || "none"}`;
    default: return e.action;
  }
}

/** The History toggle and panel; `selected` gives the shape a new comment is about. */
export function historyPanel(imageId: number, selected: () => number | null): HTMLElement {
  const list = el("ol", { class: "history", id: "history" });
  const text = el("input", { id: "comment-text", placeholder: "comment on the image (or the selected shape)" });
  text.addEventListener("keydown", (e) => {
    e.stopPropagation();  // typing is not the editor's keys
    if (e.key === "Enter") void send();
  });
  const load = async () => {
    const log = await api.audit(imageId);
    list.replaceChildren(...log.map((e) => el("li", { class: e.action }, el("span", { class: "meta" },
      `${when(e.at)} · ${e.username ?? "?"}`), " ", what(e))));
  };
  const send = async () => {
    if (!text.value.trim()) return;
    try {
      await api.comment(imageId, text.value, selected());
      text.value = "";
      await load();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };
  const body = el("div", { class: "history-body", hidden: "" }, list, text);
  const toggle = el("button", { id: "history-toggle" }, "History and comments");
  toggle.onclick = async () => {
    body.hidden = !body.hidden;
    if (!body.hidden) await load();
  };
  return el("div", { class: "history-panel" }, toggle, body);
}
