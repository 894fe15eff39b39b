// The smart-tool hook: every model-backed tool of the editor plugs in here, and the editor
// knows tools only through it (its toolbar button, its key, its help line, its events).
// Two kinds: an action runs once on the selection (re-recognize a text line); a prompt
// tool is fed clicks or a box on the canvas and keeps the model's answer on Enter (smart
// mask, click to box). Tools are made per editor, so their state dies with the editor.

import { Annotation, Image, Project, SmartClick } from "./api";
import { LabelCanvas, PromptMode } from "./canvas";
import { Doc } from "./doc";

/** What a tool sees of the editor it runs in. */
export interface EditorContext {
  imageId: number;
  image: Image;
  project: Project;
  doc: Doc;
  canvas: LabelCanvas;
  selected(): Annotation | null;
  /** the class chosen in the side panel, for new shapes */
  label(): string;
  /** the attributes a new shape of this class starts with (its class's defaults) */
  defaults(label: string): Record<string, unknown>;
  /** one line next to the toolbar: what the model said, how long it took */
  report(message: string): void;
  /** the status of what this person makes (draws, or keeps from a smart tool): accepted
   * from a reviewer, edited from an annotator, whose work a reviewer still decides */
  humanStatus(): "accepted" | "edited";
  refresh(): void;
}

interface ToolBase {
  /** the toolbar button's data-tool */
  id: string;
  name: string;
  key: string;
  help: string;
}

export interface ActionTool extends ToolBase {
  kind: "action";
  /** why the tool cannot run now (nothing selected, the wrong shape), or null */
  unavailable(): string | null;
  /** does the work; returns what to report */
  run(): Promise<string>;
}

export interface PromptTool extends ToolBase {
  kind: "prompt";
  /** how the canvas takes prompts for this tool: clicks only, or clicks and a box */
  mode: PromptMode;
  /** extra toolbar controls (a model picker) */
  controls: HTMLElement[];
  /** the editor opened its image: warm up what the first prompt needs */
  opened?(): void;
  /** the prompt changed: ask the model and preview its answer */
  ask(clicks: SmartClick[], box: number[] | null): Promise<void>;
  /** keep the previewed answer as an annotation (Enter) */
  keep(): Promise<void>;
  /** show the model's next alternative (Tab); false when it has none */
  alternative(): boolean;
  /** forget the prompt and the answer (Esc, tool change) */
  reset(): void;
}

export type SmartTool = ActionTool | PromptTool;

const factories: ((ctx: EditorContext) => SmartTool)[] = [];

/** Register a tool; `make` is called once for every editor that opens. */
export function registerSmartTool(make: (ctx: EditorContext) => SmartTool): void {
  factories.push(make);
}

export function makeSmartTools(ctx: EditorContext): SmartTool[] {
  return factories.map((make) => make(ctx));
}

/** Runs `ask` calls so that only the newest prompt's answer is shown. */
export class Latest {
  private seq = 0;

  /** a ticket for a new request; `current(ticket)` says whether it is still the newest */
  next(): number {
    return ++this.seq;
  }

  current(ticket: number): boolean {
    return ticket === this.seq;
  }

  /** drop every answer on its way */
  cancel(): void {
    this.seq++;
  }
}
