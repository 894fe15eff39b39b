// The review flow around the editor: the list it walks (next / previous in the grid's
// filter and sort, "image i of N"), `done` only with every proposal decided, an
// annotator's submit for review, a reviewer's send-back with a comment, and the image's
// last review note.

import { ApiError, AuditEntry, Image, Place, api } from "./api";
import { el, toast } from "./dom";

const LIST_KEY = "labelpilot.list";

/** The grid's filters and sort: the list the editor walks until another is chosen. */
export function rememberList(q: Record<string, string>): void {
  sessionStorage.setItem(LIST_KEY, JSON.stringify(q));
}

/** Back to the default list (all images by id), e.g. when the queue hands out an image. */
export function forgetList(): void {
  sessionStorage.removeItem(LIST_KEY);
}

export function currentList(): Record<string, string> {
  try {
    const q = JSON.parse(sessionStorage.getItem(LIST_KEY) ?? "{}");
    return q && typeof q === "object" ? q : {};
  } catch {
    return {};
  }
}

/** "review state in_review, sort by file_name", or "all images". */
export function listName(q: Record<string, string>): string {
  const parts = Object.entries(q).filter(([k]) => k !== "sort")
    .map(([k, v]) => `${k.replace("_", " ")} ${v}`);
  if (q.sort) parts.push(`sort by ${q.sort.replace("_", " ")}`);
  return parts.length ? parts.join(", ") : "all images";
}

export function placeText(p: Place): string {
  return p.position !== null ? `image ${p.position} of ${p.count}`
    : `not in this list any more (${p.count} images)`;
}

export async function place(imageId: number): Promise<Place> {
  return api.neighbors(imageId, currentList());
}

/** Open the image before or after this one in the list; false at its end. */
export async function step(imageId: number, delta: 1 | -1): Promise<boolean> {
  const p = await place(imageId);
  const target = delta === 1 ? p.next : p.previous;
  if (target === null) {
    toast(delta === 1 ? "This is the last image of the list." : "This is the first image of the list.");
    return false;
  }
  location.hash = `#/label/${target}`;
  return true;
}

/** A modal choice: resolves with the id of the button pressed (Esc: "cancel"). */
export function choose(id: string, title: string, text: string,
  buttons: [string, string][], extra?: HTMLElement): Promise<string> {
  return new Promise((resolve) => {
    const dlg = el("div", { class: "dialog", id, role: "dialog" }, el("h3", {}, title), el("p", {}, text));
    if (extra) dlg.append(extra);
    const done = (choice: string) => {
      window.removeEventListener("keydown", onKey, true);
      dlg.remove();
      resolve(choice);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        done("cancel");
      }
    };
    window.addEventListener("keydown", onKey, true);
    for (const [bid, label] of buttons) {
      const b = el("button", { id: bid }, label);
      b.onclick = () => done(bid);
      dlg.append(b);
    }
    document.body.append(dlg);
    (extra?.querySelector("textarea") ?? dlg.querySelector("button"))?.focus();
  });
}

/** A reviewer marks the image done. With proposals still undecided the server says how
 * many; the reviewer then accepts or rejects them all, or goes back to them. */
export async function markDone(image: Image): Promise<boolean> {
  try {
    await api.setImage(image.id, { review_state: "done" });
    return true;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 409 || typeof e.body.pending !== "number") throw e;
    const n = e.body.pending;
    const choice = await choose("undecided", "Proposals left to decide",
      `${n} proposal${n === 1 ? " is" : "s are"} still undecided on this image.`,
      [["accept-rest", `Accept ${n === 1 ? "it" : `all ${n}`} and mark done`],
        ["reject-rest", `Reject ${n === 1 ? "it" : `all ${n}`} and mark done`],
        ["cancel", "Go back to them"]]);
    if (choice === "cancel") return false;
    await api.setImage(image.id, { review_state: "done",
      pending: choice === "accept-rest" ? "accept" : "reject" });
    return true;
  }
}

/** An annotator hands the image to review. */
export async function submit(image: Image): Promise<void> {
  await api.setImage(image.id, { review_state: "submitted" });
  toast("Submitted for review.");
}

/** A reviewer sends a submitted image back to its annotator, saying what to change. */
export async function sendBack(image: Image): Promise<boolean> {
  const note = el("textarea", { id: "send-back-comment", rows: "3", cols: "50",
    placeholder: "what to change" });
  note.addEventListener("keydown", (e) => e.stopPropagation());
  const choice = await choose("send-back", "Send back to the annotator",
    "Say what to change; the annotator sees it on the image.",
    [["send-back-ok", "Send back"], ["cancel", "Cancel"]], note);
  if (choice === "cancel") return false;
  if (!note.value.trim()) {
    toast("A comment is needed to send an image back.", "error");
    return false;
  }
  await api.setImage(image.id, { review_state: "in_review", comment: note.value });
  toast("Sent back.");
  return true;
}

/** The last review decision with a comment, shown on the image ("Sent back by …"). */
export async function reviewNote(imageId: number): Promise<HTMLElement | null> {
  const log: AuditEntry[] = await api.audit(imageId);
  const last = [...log].reverse().find((e) => e.action === "review_state");
  const comment = last?.after?.comment;
  if (!last || typeof comment !== "string" || !comment) return null;
  const what = last.after?.review_state === "in_review" && last.before?.review_state === "submitted"
    ? "Sent back" : `Set to ${String(last.after?.review_state)}`;
  return el("p", { id: "review-note", class: "note" }, `${what} by ${last.username}: `,
    el("q", {}, comment));
}
