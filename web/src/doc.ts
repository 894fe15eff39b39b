// One image's annotations as the editor sees them: every change is saved at once (in
// order, one request at a time) with the version it was made on, and can be undone.

import { Annotation, ApiError, api, errorText } from "./api";

export type Change = Partial<Pick<Annotation, "label" | "shape" | "text" | "status" | "attributes" | "score">>;

type Op =
  | { kind: "create"; ann: Annotation }
  | { kind: "delete"; ann: Annotation }
  | { kind: "update"; id: number; before: Change; after: Change };

export interface Conflict {
  mine: Change;
  theirs: Annotation | null;
  resolve: (choice: "mine" | "theirs") => void;
}

export class Doc {
  anns: Annotation[] = [];
  private undoStack: Op[] = [];
  private redoStack: Op[] = [];
  private queue: Promise<void> = Promise.resolve();
  saving = 0;
  lastError = "";

  constructor(
    public imageId: number,
    private onChange: () => void,
    private onConflict: (c: Conflict) => void,
  ) {}

  async load(): Promise<void> {
    this.anns = (await api.annotations(this.imageId)).data;
    this.undoStack = [];
    this.redoStack = [];
    this.onChange();
  }

  byId(id: number): Annotation | undefined {
    return this.anns.find((a) => a.id === id);
  }

  /** Run a save after the ones already queued; the editor shows "saving" meanwhile. */
  private enqueue(work: () => Promise<void>): Promise<void> {
    this.saving++;
    this.onChange();
    const run = this.queue.then(work).catch((e) => {
      this.lastError = errorText(e);
    }).finally(() => {
      this.saving--;
      this.onChange();
    });
    this.queue = run;
    return run;
  }

  idle(): Promise<void> {
    return this.queue;
  }

  create(ann: Omit<Annotation, "id" | "image_id" | "version" | "score" | "source" | "updated_by"> & { source?: string },
         record = true): Promise<void> {
    return this.enqueue(async () => {
      const saved = await api.create(this.imageId, ann);
      this.anns.push(saved);
      if (record) this.push({ kind: "create", ann: saved });
    });
  }

  update(id: number, after: Change, record = true): Promise<void> {
    return this.enqueue(async () => {
      const current = this.byId(id);
      if (!current) return;
      const before: Change = {};
      for (const k of Object.keys(after) as (keyof Change)[]) {
        (before as any)[k] = current[k];
      }
      await this.save(current, after);
      if (record) this.push({ kind: "update", id, before, after });
    });
  }

  private async save(current: Annotation, after: Change): Promise<void> {
    try {
      const saved = await api.update(current.id, current.version, after);
      this.replace(saved);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 409) throw e;
      const theirs = (e.body?.current ?? null) as Annotation | null;
      const choice = await new Promise<"mine" | "theirs">((resolve) =>
        this.onConflict({ mine: after, theirs, resolve }));
      if (theirs === null) {
        this.anns = this.anns.filter((a) => a.id !== current.id);
      } else if (choice === "theirs") {
        this.replace(theirs);
      } else {
        this.replace(await api.update(theirs.id, theirs.version, after));
      }
    }
  }

  remove(id: number, record = true): Promise<void> {
    return this.enqueue(async () => {
      const current = this.byId(id);
      if (!current) return;
      try {
        await api.remove(id, current.version);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409) throw e;
        const theirs = (e.body?.current ?? null) as Annotation | null;
        const choice = await new Promise<"mine" | "theirs">((resolve) =>
          this.onConflict({ mine: { status: "rejected" }, theirs, resolve }));
        if (choice === "theirs" && theirs) {
          this.replace(theirs);
          return;
        }
        if (theirs) await api.remove(id, theirs.version);
      }
      this.anns = this.anns.filter((a) => a.id !== id);
      if (record) this.push({ kind: "delete", ann: current });
    });
  }

  private replace(a: Annotation): void {
    const i = this.anns.findIndex((x) => x.id === a.id);
    if (i >= 0) this.anns[i] = a;
    else this.anns.push(a);
  }

  private push(op: Op): void {
    this.undoStack.push(op);
    this.redoStack = [];
  }

  canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  async undo(): Promise<void> {
    const op = this.undoStack.pop();
    if (!op) return;
    await this.invert(op);
    this.redoStack.push(op);
  }

  async redo(): Promise<void> {
    const op = this.redoStack.pop();
    if (!op) return;
    await this.replay(op);
    this.undoStack.push(op);
  }

  private async invert(op: Op): Promise<void> {
    if (op.kind === "create") {
      await this.remove(op.ann.id, false);
    } else if (op.kind === "delete") {
      await this.recreate(op);
    } else {
      await this.update(op.id, op.before, false);
    }
  }

  private async replay(op: Op): Promise<void> {
    if (op.kind === "create") {
      await this.recreate(op);
    } else if (op.kind === "delete") {
      await this.remove(op.ann.id, false);
    } else {
      await this.update(op.id, op.after, false);
    }
  }

  /** Create the op's annotation again; it gets a new id, which every op then uses. */
  private async recreate(op: { ann: Annotation }): Promise<void> {
    const count = this.anns.length;
    await this.create(op.ann, false);
    if (this.anns.length > count) {
      const fresh = this.anns[this.anns.length - 1];
      this.renumber(op.ann.id, fresh.id);
      op.ann = fresh;
    }
  }

  private renumber(from: number, to: number): void {
    for (const op of [...this.undoStack, ...this.redoStack]) {
      if (op.kind === "update" && op.id === from) op.id = to;
      if (op.kind !== "update" && op.ann.id === from) op.ann = { ...op.ann, id: to };
    }
  }
}
