// A typed, thin client for LabelPilot's REST API.

export type XY = [number, number];
export type Shape =
  | { type: "box"; xyxy: number[] }
  | { type: "rotated_box"; cxcywha: number[] }
  | { type: "quad"; points: XY[] }
  | { type: "polygon"; points: XY[]; holes?: XY[][] }
  | { type: "mask"; rle: string; size: number[] }
  | { type: "point"; xy: XY }
  | { type: "polyline"; points: XY[] };

export interface Annotation {
  id: number;
  image_id: number;
  label: string;
  shape: Shape;
  text: string | null;
  attributes: Record<string, unknown>;
  group: number | null;
  score: number | null;
  source: string;
  status: "predicted" | "accepted" | "edited" | "rejected";
  version: number;
  updated_by: string | null;
}

export interface SmartClick { x: number; y: number; positive: boolean }

export interface ModelInfo {
  name: string; version: string; task: string; kind: string; builtin: boolean;
  description: string; interactive: boolean; default: boolean;
  classes: string[]; metrics: Record<string, any>;
  /** a detector custom auto-label can start from */
  trainable: boolean;
  /** optimized variants the accuracy gate kept (int8-cpu, ...) */
  variants?: Record<string, any>;
}

export interface AnalyticsPanel {
  key: string; section: string; title: string;
  kind: "bar" | "stacked" | "hist" | "area" | "heatmap" | "reliability" | "table";
  caption: string; data: Record<string, unknown>; why_not: string | null; svg: string | null;
}

export interface AnalyticsReport {
  workspace: string; task: string; stamp: string; built_at: string; seconds: number;
  cached: boolean; sections: string[]; panels: AnalyticsPanel[];
}

export interface OptimizeOptions {
  int8?: boolean;
  calibrate_on?: "train" | "val";
  max_loss?: number;
  min_speedup?: number;
}

export interface AutolabelOptions {
  /** which images: untouched ones, or every image not done */
  model: string;
  images?: "new" | "all";
  min_score?: number;
  map?: Record<string, string> | null;
  unmapped?: "drop" | "add" | null;
  /** OCR models: find the text lines, or read each image whole as one cropped line */
  lines?: "detect" | "whole-image" | null;
  /** where the models run: in the server, or on the Ray cluster the server is set up for */
  executor?: "local" | "ray" | null;
}

export interface TrainOptions {
  task: "ocr-rec" | "detect";
  init: "pretrained" | "scratch";
  minutes?: number | null;
  epochs?: number | null;
  name?: string | null;
  /** the detector to start from (detect only) */
  base?: string | null;
  /** large images with small objects (detect only): train, then detect, in tiles */
  tile?: number | "auto" | null;
}

export interface ClickBoxResult {
  box: number[]; label: string | null; score: number | null; source: string; method: "detector" | "mask";
}

export interface SegmentPrompt {
  model?: string;
  clicks: SmartClick[];
  box: number[] | null;
  previous: { type: "mask"; rle: string; size: number[] } | null;
  output?: "polygon" | "mask";
  tolerance?: number;
}

export interface SegmentResult {
  model: string;
  source: string;
  proposals: { quality: number | null; area: number; rle: string; shapes: Shape[] }[];
  warnings: string[];
  embed_ms: number;
  decode_ms: number;
  cached: string;
}

export interface Image {
  id: number;
  file_name: string;
  width: number;
  height: number;
  split: string | null;
  review_state: string;
  claimed_by: string | null;
  assignee: string | null;
  tags: string[];
  annotations: number;
  labels_version?: string | null;
  /** its place in the queue an active-learning selection made (1 first), and why */
  queue_rank?: number | null;
  queue_reason?: QueueReason | null;
}

export interface QueueReason {
  strategy: string;
  score: number | null;
  reason: string;
  model: string | null;
}

export interface SelectOptions {
  strategy: "uncertainty" | "diversity" | "hybrid" | "random";
  budget: number;
  model?: string | null;
  split?: string | null;
  seed?: number;
  executor?: "local" | "ray" | null;
}

/** One attribute a class's shapes carry (CVAT's kinds). */
export interface AttributeSpec {
  name: string;
  type: "checkbox" | "select" | "text" | "number";
  values?: string[];
  min?: number;
  max?: number;
  default: unknown;
}

export interface Readiness {
  ready: boolean;
  reason: string | null;
  images: number | null;
  warnings?: string[];
}

export interface Place {
  position: number | null;
  count: number;
  previous: number | null;
  next: number | null;
}

export interface AuditEntry {
  id: number;
  annotation_id: number | null;
  action: string;
  username: string | null;
  at: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

export interface Job {
  id: number;
  kind: string;
  status: string;
  total: number;
  done: number;
  rate: number | null;
  eta_s: number | null;
  error: string | null;
  params: Record<string, any>;
  result: Record<string, any> | null;
  cancel_requested: boolean;
}

export interface Project {
  name: string;
  task: string;
  labels: string[];
  label_colors: Record<string, string>;
  label_attributes: Record<string, AttributeSpec[]>;
  label_keypoints?: Record<string, { keypoints: string[]; skeleton: number[][] }>;
  tags: string[];
  stats: Record<string, any>;
  /** the default model for autolabel and the smart tools (the closed loop promotes here) */
  prelabeler?: string | null;
  loop?: LoopSettings;
  /** OCR projects: how pre-labeling finds text lines */
  text_lines?: "detect" | "whole-image";
  /** where this server can run jobs' models (ray: the cluster it is set up for) */
  executors?: ("local" | "ray")[];
  executor?: "local" | "ray";
}

export interface LoopSettings {
  enabled: boolean;
  every: number;
  minutes: number;
}

export interface Me {
  username: string;
  role: "annotator" | "reviewer" | "admin";
  must_change_password?: boolean;
}

export interface UserRow extends Me {
  active: boolean;
}

export class ApiError extends Error {
  constructor(public status: number, public detail: string, public body: any) {
    super(detail);
  }
}

/** What to tell the user about a failure: the server's reason, else the error itself. */
export function errorText(e: unknown): string {
  return e instanceof ApiError ? e.detail : String(e);
}

const TOKEN_KEY = "labelpilot.token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export async function call<T>(method: string, url: string, body?: unknown,
  bearer?: string): Promise<T> {
  const headers: Record<string, string> = {};
  const t = bearer ?? token();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  let payload: BodyInit | undefined;
  if (body instanceof URLSearchParams || body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const r = await fetch(url, { method, headers, body: payload });
  if (r.status === 204) return undefined as T;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    if (r.status === 401 && !url.endsWith("/auth/token")) {
      sessionStorage.removeItem(TOKEN_KEY);
      location.hash = "#/login";
    }
    throw new ApiError(r.status, detail ?? r.statusText, data);
  }
  return data as T;
}

export async function login(username: string, password: string): Promise<void> {
  const form = new URLSearchParams({ username, password });
  const r = await call<{ access_token: string }>("POST", "/api/auth/token", form);
  sessionStorage.setItem(TOKEN_KEY, r.access_token);
}

/** A token the server handed out (after a password change). */
export function setToken(t: string): void {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export async function logout(): Promise<void> {
  // Forget the token first: a page left while the revoke is in flight is signed out too.
  const current = sessionStorage.getItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY);
  if (current) await call("POST", "/api/auth/revoke", undefined, current);
}

export const api = {
  me: () => call<Me>("GET", "/api/auth/me"),
  project: () => call<Project>("GET", "/api/project"),
  analytics: () => call<AnalyticsReport>("GET", "/api/analytics"),
  images: (q: Record<string, string>) =>
    call<{ data: Image[]; count: number }>("GET", `/api/images?${new URLSearchParams(q)}`),
  image: (id: number) => call<Image>("GET", `/api/images/${id}`),
  setImage: (id: number, body: Record<string, unknown>) =>
    call<Image>("PATCH", `/api/images/${id}`, body),
  next: (queue: "label" | "review" = "label") =>
    call<Image | undefined>("POST", `/api/images/next?queue=${queue}`),
  assign: (imageIds: number[], assignees: string[]) =>
    call<{ assigned: number; by_assignee: Record<string, number> }>(
      "POST", "/api/images/assign", { image_ids: imageIds, assignees }),
  assignable: () => call<UserRow[]>("GET", "/api/users/assignable"),
  neighbors: (id: number, q: Record<string, string>) =>
    call<Place>("GET", `/api/images/${id}/neighbors?${new URLSearchParams(q)}`),
  audit: (id: number) => call<AuditEntry[]>("GET", `/api/images/${id}/audit`),
  comment: (id: number, text: string, annotationId: number | null) =>
    call<AuditEntry>("POST", `/api/images/${id}/comments`, { text, annotation_id: annotationId }),
  annotations: (id: number) =>
    call<{ data: Annotation[] }>("GET", `/api/images/${id}/annotations`),
  annotation: (id: number) => call<Annotation>("GET", `/api/annotations/${id}`),
  create: (imageId: number, a: Partial<Annotation>) =>
    call<Annotation>("POST", `/api/images/${imageId}/annotations`, {
      label: a.label, shape: a.shape, text: a.text, attributes: a.attributes ?? {},
      group: a.group ?? null, status: a.status ?? "accepted", source: a.source ?? "human",
    }),
  update: (id: number, version: number, changes: Record<string, unknown>) =>
    call<Annotation>("PATCH", `/api/annotations/${id}`, { version, ...changes }),
  combine: (id: number, version: number, other: number, otherVersion: number, op: "union" | "subtract") =>
    call<Annotation>("POST", `/api/annotations/${id}/combine`, { version, other, other_version: otherVersion, op }),
  remove: (id: number, version: number) =>
    call<void>("DELETE", `/api/annotations/${id}?version=${version}`),
  bulk: (imageId: number, status: string, ids?: number[]) =>
    call<{ changed: number }>("POST", `/api/images/${imageId}/annotations/bulk`,
      { status, ids: ids ?? null }),
  recognize: (imageId: number, points: XY[]) =>
    call<{ text: string; score: number; model: string }>(
      "POST", `/api/images/${imageId}/recognize`, { points }),
  models: () => call<ModelInfo[]>("GET", "/api/models"),
  optimize: (name: string, o: OptimizeOptions = {}) =>
    call<Job>("POST", `/api/models/${encodeURIComponent(name)}/optimize`, o),
  history: (name: string) =>
    call<Record<string, number>[]>("GET", `/api/models/${encodeURIComponent(name)}/history`),
  clickBox: (imageId: number, clicks: SmartClick[]) =>
    call<ClickBoxResult>("POST", `/api/images/${imageId}/click-box`, { clicks }),
  segment: (imageId: number, prompt: SegmentPrompt) =>
    call<SegmentResult>("POST", `/api/images/${imageId}/segment`, prompt),
  prepareSegment: (imageId: number) =>
    call<{ model: string; status: string }>("POST", `/api/images/${imageId}/segment/prepare`),
  jobs: () => call<Job[]>("GET", "/api/jobs"),
  job: (id: number) => call<Job>("GET", `/api/jobs/${id}`),
  cancel: (id: number) => call<Job>("POST", `/api/jobs/${id}/cancel`),
  autolabel: (o: AutolabelOptions) => call<Job>("POST", "/api/autolabel", { images: "new", ...o }),
  select: (o: SelectOptions) => call<Job>("POST", "/api/select", o),
  selectCheck: () => call<Readiness>("GET", "/api/select/check"),
  train: (o: TrainOptions) => call<Job>("POST", "/api/train", o),
  trainCheck: (task: string) => call<Readiness>("GET", `/api/train/check?task=${task}`),
  autolabelCheck: (images: string) => call<Readiness>("GET", `/api/autolabel/check?images=${images}`),
  changePassword: (current: string, fresh: string) =>
    call<{ access_token: string }>("POST", "/api/auth/password",
      { current_password: current, new_password: fresh }),
  users: () => call<UserRow[]>("GET", "/api/users"),
  addUser: (username: string, password: string, role: string) =>
    call<UserRow>("POST", "/api/users", { username, password, role }),
  updateUser: (username: string, body: Record<string, unknown>) =>
    call<UserRow>("PATCH", `/api/users/${encodeURIComponent(username)}`, body),
  assignSplits: (body: Record<string, unknown>) =>
    call<{ assigned: number; by_split: Record<string, number>; by_class: Record<string, Record<string, number>> }>(
      "POST", "/api/project/splits", body),
  changeLabel: (name: string, body: Record<string, unknown>) =>
    call<Project>("PATCH", `/api/project/labels/${encodeURIComponent(name)}`, body),
  addLabels: (names: string[]) => call<Project>("PATCH", "/api/project", { add_labels: names }),
  renameProject: (name: string) => call<Project>("PATCH", "/api/project", { name }),
  setLoop: (loop: LoopSettings, text_lines?: "detect" | "whole-image") =>
    call<Project>("PATCH", "/api/project", { loop, ...(text_lines ? { text_lines } : {}) }),
  formats: () => call<{ name: string; description: string }[]>("GET", "/api/project/formats"),
  exportLabels: (o: { format: string; status: string; split: string | null; include_images: boolean }) =>
    call<Job>("POST", "/api/exports", o),
  importArchive: (file: File, format: string, split: string, skipInvalid: boolean) => {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("format", format);
    if (split) form.append("split", split);
    form.append("skip_invalid", String(skipInvalid));
    return call<Job>("POST", "/api/imports", form);
  },
  upload: (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return call<Image & { created: boolean }>("POST", "/api/images", form);
  },
};
