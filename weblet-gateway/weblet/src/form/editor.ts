// The customization form's working state: the values typed (saved to the draft in batches a
// moment after typing stops, or at once for a choice), the draft's field errors (shown on a field
// once it was touched, on every field once the person asks for the preview) and which fields the
// form's conditions show.
import { customization, SHORT } from "../api";
import { button, clear, h } from "../dom";
import type { FieldError, FormField } from "../gen/podconnect/v1/customization_pb";
import { alive, failed, type Screen } from "../screen";
import type { Flow } from "../state";
import { describe } from "../status";
import { banner } from "../widgets";

/** How long after the last keystroke the typed values are saved. */
const SAVE_DELAY_MS = 450;

/** Conditions nest at most this deep (a cycle in a broken form ends here). */
const MAX_CONDITION_DEPTH = 16;

/** The quantity's errors have this field id. */
export const QUANTITY = "";

/** One field on screen: its wrapper (hidden by conditions, marked invalid) and its error line. */
export interface FieldRef {
  field: FormField | null;
  wrap: HTMLElement;
  error: HTMLElement;
}

export class DraftEditor {
  readonly refs = new Map<string, FieldRef>();
  /** Sections, hidden when none of their fields is visible. */
  readonly sections: HTMLElement[] = [];
  readonly topBanner = h("div", { class: "form-banner", testid: "form-banner" });
  readonly status = h("span", { class: "save-status", testid: "save-status", attrs: { "aria-live": "polite" } });

  private readonly fields = new Map<string, FormField>();
  private readonly touched = new Set<string>();
  /** Values typed but not saved yet ("" clears the field). */
  private readonly pending = new Map<string, string>();
  private pendingQuantity: number | undefined;
  private errors: FieldError[];
  /** Whether errors of untouched fields show too (after Preview was tapped). */
  private revealAll = false;
  private timer = 0;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly s: Screen,
    readonly flow: Flow,
  ) {
    for (const f of flow.form?.fields || []) this.fields.set(f.id, f);
    // The draft's errors so far; those of untouched fields stay out of sight until Preview.
    this.errors = flow.errors;
  }

  value(id: string): string {
    return this.flow.values[id] || "";
  }

  /** Whether a field's condition (and its controlling field's, in turn) shows it. */
  visible(f: FormField | null, depth = 0): boolean {
    const c = f?.visibleWhen;
    if (!c) return true;
    const ctl = this.fields.get(c.fieldId);
    if (ctl && (depth > MAX_CONDITION_DEPTH || !this.visible(ctl, depth + 1))) return false;
    return c.values.indexOf(this.value(c.fieldId)) >= 0;
  }

  refreshVisibility(): void {
    this.refs.forEach((r) => {
      r.wrap.hidden = !this.visible(r.field);
    });
    for (const el of this.sections) {
      el.hidden = !Array.prototype.some.call(el.querySelectorAll(".field"), (w: HTMLElement) => !w.hidden);
    }
  }

  showErrors(): void {
    const byField = new Map<string, FieldError>();
    for (const e of this.errors) if (!byField.has(e.fieldId)) byField.set(e.fieldId, e);
    this.refs.forEach((r, id) => {
      if (id === QUANTITY) {
        const q = byField.get(QUANTITY);
        this.setError(r, !!q, q ? q.message : "", false);
        return;
      }
      if (this.pending.has(id)) return; // the person is still typing here: the answer is stale
      const e = byField.get(id);
      const show = !!e && (this.revealAll || this.touched.has(id)) && this.visible(r.field);
      this.setError(r, show, show && e ? e.message : "", true);
    });
    // Errors of fields the form does not show (unknown ids) go to the banner once revealed.
    const orphan = this.errors.filter((e) => e.fieldId !== QUANTITY && !this.refs.has(e.fieldId));
    if (this.revealAll && orphan.length) {
      clear(this.topBanner);
      this.topBanner.appendChild(banner("error", orphan.map((e) => e.message).join(" "), "form-error"));
    }
  }

  /** Shows or hides a field's error line; `mark` also marks the field and its input invalid. */
  private setError(r: FieldRef, show: boolean, message: string, mark: boolean): void {
    r.error.textContent = message;
    r.error.hidden = !show;
    if (!mark) return;
    r.wrap.classList.toggle("invalid", show);
    const input = r.wrap.querySelector("[data-input]");
    if (input) input.setAttribute("aria-invalid", show ? "true" : "false");
  }

  private setStatus(text: string, kind: "" | "saving" | "error" = ""): void {
    this.status.textContent = text;
    this.status.className = `save-status ${kind}`;
  }

  /** A value typed or chosen: saved a moment later, or `now`. */
  change(id: string, v: string, now = false): void {
    this.flow.values[id] = v;
    this.pending.set(id, v);
    this.touched.add(id);
    this.refreshVisibility();
    if (now) this.saveNow();
    else {
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => void this.flush(), SAVE_DELAY_MS);
    }
  }

  /** The person left a field: save what they typed there, or show its error. */
  left(id: string): void {
    this.touched.add(id);
    if (this.pending.has(id)) this.saveNow();
    else this.showErrors();
  }

  setQuantity(q: number): void {
    this.pendingQuantity = q;
    this.saveNow();
  }

  private saveNow(): void {
    void this.flush();
  }

  /** Saves what is pending; false when the save failed (what was typed stays pending). */
  async flush(): Promise<boolean> {
    window.clearTimeout(this.timer);
    while (this.inflight) await this.inflight;
    if (!alive(this.s)) return false;
    if (this.pending.size === 0 && this.pendingQuantity === undefined) return true;
    const batch = new Map(this.pending);
    this.pending.clear();
    const quantity = this.pendingQuantity;
    this.pendingQuantity = undefined;
    const values: Record<string, string> = {};
    const clearFieldIds: string[] = [];
    batch.forEach((v, k) => {
      if (v === "") clearFieldIds.push(k);
      else values[k] = v;
    });
    this.setStatus("Saving…", "saving");
    let ok = true;
    this.inflight = customization
      .updateDraft(
        { draftId: this.flow.draft.id, values, clearFieldIds, quantity },
        { ...SHORT, signal: this.s.signal },
      )
      .then((res) => {
        if (!alive(this.s)) return;
        if (res.draft) this.flow.draft = res.draft;
        this.errors = res.fieldErrors;
        this.flow.errors = res.fieldErrors;
        this.setStatus(this.errors.length ? "" : "All fields OK");
        this.showErrors();
        if (!this.errors.length) clear(this.topBanner);
      })
      .catch((e) => {
        ok = false;
        if (failed(this.s, e)) this.notSaved(e, batch, quantity);
      })
      .then(() => {
        this.inflight = null;
      });
    await this.inflight;
    return ok;
  }

  /** A save failed: keep its values pending and say so. */
  private notSaved(e: unknown, batch: Map<string, string>, quantity: number | undefined): void {
    batch.forEach((v, k) => {
      if (!this.pending.has(k)) this.pending.set(k, v);
    });
    if (quantity !== undefined && this.pendingQuantity === undefined) this.pendingQuantity = quantity;
    const p = describe(e);
    // The fields just typed in: their old errors are stale. When the server refused the values
    // themselves (e.g. a value that is too long), its reason goes right there.
    const refused = p.kind === "refused-values";
    let first: HTMLElement | null = null;
    batch.forEach((_, k) => {
      const r = this.refs.get(k);
      if (!r) return;
      this.setError(r, refused, refused ? p.message : "", true);
      if (refused && !first) first = r.wrap;
    });
    if (first) (first as HTMLElement).scrollIntoView({ block: "nearest" });
    this.setStatus("Not saved", "error");
    clear(this.topBanner);
    this.topBanner.appendChild(
      banner(
        "error",
        `${p.title}. Your changes are kept on this screen.`,
        "save-error",
        button("Try again", () => void this.flush(), { testid: "retry" }),
      ),
    );
  }

  /** After Preview: every error shows; the ones of visible fields (and the quantity) count. */
  revealErrors(): FieldError[] {
    this.revealAll = true;
    this.showErrors();
    return this.errors.filter((e) => {
      const r = this.refs.get(e.fieldId);
      return !r || e.fieldId === QUANTITY || this.visible(r.field);
    });
  }
}
