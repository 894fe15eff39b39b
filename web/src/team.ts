// A team's share of the work: images assigned to people from the grid, each person's
// queue ("N images assigned to you"), and the reviewers' queue of submitted images.

import { Me, Project, api, errorText } from "./api";
import { el, toast } from "./dom";
import { forgetList, rememberList } from "./review";

/** The `assignee` filter value for images assigned to no one. */
export const UNASSIGNED = "@unassigned";

/** "Assign these N images to [person | every annotator in turn | no one]": the grid's list
 * (its filters) as the selection (reviewers and admins). */
export function assignControl(ids: () => number[], done: () => void): HTMLElement {
  const who = el("select", { id: "assign-to", "aria-label": "assign these images to" },
    el("option", { value: "" }, "no one"));
  const go = el("button", { id: "assign-list" }, "Assign these images to");
  void api.assignable().then((people) => {
    const annotators = people.filter((p) => p.role === "annotator").map((p) => p.username);
    if (annotators.length > 1) {
      who.append(el("option", { value: annotators.join(",") }, `every annotator in turn (${annotators.length})`));
    }
    for (const p of people) who.append(el("option", { value: p.username }, `${p.username} (${p.role})`));
  }).catch(() => undefined);
  go.onclick = async () => {
    const chosen = ids();
    if (!chosen.length) return void toast("No image in this list.");
    const names = who.value ? who.value.split(",") : [];
    try {
      const r = await api.assign(chosen, names);
      const parts = Object.entries(r.by_assignee)
        .map(([k, v]) => `${k === UNASSIGNED ? "no one" : k} ${v}`).join(", ");
      done();
      toast(`${r.assigned} images assigned: ${parts}.`);
    } catch (e) {
      toast(errorText(e), "error");
    }
  };
  return el("span", { class: "list-assign" }, go, who);
}

/** The overview's queue buttons: a reviewer's "Review submitted (N)", and for everyone
 * the images assigned to them. */
export function queueActions(project: Project, me: Me | null): HTMLElement[] {
  const out: HTMLElement[] = [];
  const byState = project.stats.images_by_review_state as Record<string, number>;
  const submitted = byState.submitted ?? 0;
  if (me && me.role !== "annotator") {
    const review = el("button", { id: "review-queue" }, `Review submitted images (${submitted})`);
    review.disabled = !submitted;
    review.onclick = () => void openReviewQueue();
    out.push(review);
  }
  const mine = me ? (project.stats.images_by_assignee as Record<string, number> | undefined)?.[me.username] ?? 0 : 0;
  if (me && mine) {
    const link = el("a", { id: "my-images", href: "#/images" }, `${mine} image${mine === 1 ? "" : "s"} assigned to you`);
    link.onclick = () => rememberList({ assignee: me.username });
    out.push(link);
  }
  return out;
}

/** The reviewers' queue: the next submitted image, and next / previous walk the
 * submitted images. */
async function openReviewQueue(): Promise<void> {
  forgetList();
  const img = await api.next("review");
  if (!img) return void toast("No image is waiting for review.");
  rememberList({ review_state: "submitted" });
  location.hash = `#/label/${img.id}`;
}
