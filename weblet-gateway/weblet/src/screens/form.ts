// The customization form: makes (or reuses) the draft, lays out its fields, and lets the person
// on to the preview once the draft has no errors left.
import { customization, SHORT } from "../api";
import { button, clear, h, spinner } from "../dom";
import { DraftEditor } from "../form/editor";
import { formFields, quantityWidget } from "../form/fields";
import type { Product } from "../gen/podconnect/v1/catalog_pb";
import { type Draft, DraftState, type Form } from "../gen/podconnect/v1/customization_pb";
import { nav } from "../routes";
import { alive, failed, type Screen, screen, showProblem } from "../screen";
import { type Flow, newFlow } from "../state";
import { notFound } from "../status";
import { banner, emptyState } from "../widgets";

/** The form of `product`; `route.flow` is the draft made so far (kept for Back), or null. */
export async function formScreen(route: { product: Product; flow: Flow | null }): Promise<void> {
  const s = screen({ title: route.product.displayName, testid: "screen-form", back: true });
  s.body.appendChild(spinner("Preparing the form…"));
  let flow: Flow;
  try {
    flow = await openDraft(s, route.product, route.flow);
  } catch (e) {
    if (failed(s, e)) showProblem(s, e);
    return;
  }
  if (!alive(s)) return;
  route.flow = flow;
  renderForm(s, flow);
}

/** The flow to edit: the existing one, or (new, or its draft was finalized and can no longer
 * change) a new draft with the values typed so far. */
async function openDraft(s: Screen, product: Product, existing: Flow | null): Promise<Flow> {
  const form = existing?.form
    ? existing.form
    : (await customization.getForm({ productId: product.id }, { ...SHORT, signal: s.signal })).form;
  if (!form) throw notFound("The product has no form.");
  if (existing && existing.draft.state !== DraftState.FINALIZED) {
    existing.form = form;
    return existing;
  }
  const editable = new Set(form.fields.filter((f) => !f.readOnly).map((f) => f.id));
  const values: Record<string, string> = {};
  if (existing) {
    for (const k of Object.keys(existing.values)) {
      if (editable.has(k) && existing.values[k] !== "") values[k] = existing.values[k];
    }
  }
  const res = await customization.createDraft(
    { productId: product.id, quantity: existing ? existing.draft.quantity : 0, values },
    { ...SHORT, signal: s.signal },
  );
  return newFlow(product, form, res.draft as Draft, res.fieldErrors);
}

function renderForm(s: Screen, flow: Flow): void {
  const form = flow.form as Form;
  clear(s.body);
  const editor = new DraftEditor(s, flow);
  const formEl = h(
    "form",
    { class: "form", testid: "customize-form", attrs: { novalidate: true, autocomplete: "off" } },
    formFields(editor, form),
  );
  formEl.addEventListener("submit", (e) => e.preventDefault());
  const rule = flow.product.quantity;
  if (rule && rule.options.length > 1) formEl.appendChild(quantityWidget(editor, rule));
  if (!form.fields.length) {
    formEl.appendChild(emptyState("Nothing to fill in", "This product is printed as it is.", "form-empty"));
  }
  s.body.appendChild(editor.topBanner);
  s.body.appendChild(formEl);
  editor.refreshVisibility();
  editor.showErrors();
  s.footer.appendChild(editor.status);
  s.footer.appendChild(previewButton(s, editor));
}

/** Preview: saves what is pending, then goes on, or shows what still needs attention. */
function previewButton(s: Screen, editor: DraftEditor): HTMLButtonElement {
  const next: HTMLButtonElement = button(
    "Preview",
    async () => {
      next.disabled = true;
      next.textContent = "Checking…";
      const ok = await editor.flush();
      if (!alive(s)) return;
      next.disabled = false;
      next.textContent = "Preview";
      if (!ok) return;
      const shown = editor.revealErrors();
      if (!shown.length && editor.flow.draft.state !== DraftState.EDITING) {
        nav.go({ name: "preview", flow: editor.flow });
        return;
      }
      clear(editor.topBanner);
      editor.topBanner.appendChild(
        banner(
          "error",
          shown.length === 1 ? "One field needs your attention." : `${shown.length} fields need your attention.`,
          "form-error",
        ),
      );
      const first = s.body.querySelector(".field.invalid") as HTMLElement | null;
      (first || editor.topBanner).scrollIntoView({ block: "center" });
      const input = first?.querySelector("input,textarea,button") as HTMLElement | null;
      if (input) input.focus();
    },
    { kind: "primary", testid: "preview-button" },
  );
  return next;
}
