// Where a job's models run, for a server set up with a Ray cluster: in the server or on
// the cluster (the server's settings name the cluster; a request only picks one).

import { Project } from "./api";
import { el } from "./dom";

/** The choice, preset to the server's default; null when the server runs models only in
 * itself (nothing to choose). */
export function executorChoice(project: Project, id: string): HTMLSelectElement | null {
  if (!(project.executors ?? ["local"]).includes("ray")) return null;
  const sel = el("select", { id, "aria-label": "where the models run" },
    el("option", { value: "local" }, "on this server"),
    el("option", { value: "ray" }, "on the Ray cluster"));
  sel.value = project.executor ?? "local";
  return sel;
}

/** The request's `executor` for a choice (null: the server's default). */
export function executorOf(sel: HTMLSelectElement | null): "local" | "ray" | null {
  return sel ? (sel.value as "local" | "ray") : null;
}
