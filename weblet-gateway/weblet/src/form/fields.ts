// The form's widgets: one per field (choices as a radio group, text of every kind as an input or
// a text area), the quantity choice, and the layout of fields in sections.
import { blobUrl, h } from "../dom";
import type { QuantityRule } from "../gen/podconnect/v1/catalog_pb";
import { FieldType, type Form, type FormField } from "../gen/podconnect/v1/customization_pb";
import { app } from "../state";
import { radioGroup } from "../widgets";
import { type DraftEditor, QUANTITY } from "./editor";

type Attrs = Record<string, string | number | boolean | undefined>;

/** The form's fields: unsectioned ones first, then the sections, each in display order. */
export function formFields(editor: DraftEditor, form: Form): HTMLElement[] {
  const out: HTMLElement[] = [];
  const sectionIds = new Set(form.sections.map((x) => x.id));
  const loose = byOrder(form.fields.filter((f) => !f.sectionId || !sectionIds.has(f.sectionId)));
  if (loose.length)
    out.push(
      h(
        "div",
        { class: "section" },
        loose.map((f) => fieldWidget(editor, f)),
      ),
    );
  for (const sec of byOrder(form.sections)) {
    const fs = byOrder(form.fields.filter((f) => f.sectionId === sec.id));
    if (!fs.length) continue;
    const el = h(
      "section",
      { class: "section", testid: `section-${sec.id}` },
      h("h2", { class: "section-title", text: sec.title }),
      sec.description ? h("p", { class: "section-desc", text: sec.description }) : null,
      fs.map((f) => fieldWidget(editor, f)),
    );
    editor.sections.push(el);
    out.push(el);
  }
  return out;
}

function byOrder<T extends { displayOrder: number }>(items: T[]): T[] {
  return items
    .map((x, i) => ({ x, i }))
    .sort((a, b) => a.x.displayOrder - b.x.displayOrder || a.i - b.i)
    .map((e) => e.x);
}

/** One field: label, help, control and error line. */
function fieldWidget(editor: DraftEditor, f: FormField): HTMLElement {
  const inputId = `f-${f.id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const error = h("p", {
    class: "field-error",
    testid: `field-error-${f.id}`,
    attrs: { id: `${inputId}-err`, "aria-live": "polite" },
  });
  error.hidden = true;
  const choice = f.type === FieldType.CHOICE;
  const wrap = h(
    "div",
    {
      class: `field field-${FieldType[f.type].toLowerCase()}`,
      testid: `field-wrap-${f.id}`,
      attrs: { "data-field-id": f.id },
    },
    h(
      choice ? "span" : "label",
      { class: "field-label", attrs: { id: `${inputId}-label`, for: choice ? undefined : inputId } },
      f.label || f.code || f.id,
      f.required ? h("span", { class: "req", attrs: { "aria-label": "required" }, text: " *" }) : null,
    ),
    f.help ? h("p", { class: "field-help", text: f.help }) : null,
    choice ? choiceControl(editor, f, inputId) : textControl(editor, f, inputId),
    error,
  );
  editor.refs.set(f.id, { field: f, wrap, error });
  return wrap;
}

function choiceControl(editor: DraftEditor, f: FormField, inputId: string): HTMLElement {
  return radioGroup({
    testid: `field-${f.id}`,
    attrs: { "aria-labelledby": `${inputId}-label`, "data-input": true },
    selected: editor.value(f.id),
    disabled: f.readOnly,
    onPick: (v) => editor.change(f.id, v, true),
    options: f.options.map((o) => ({
      value: o.value,
      testid: `choice-${f.id}-${o.value}`,
      class: o.swatchColor || o.image ? "choice-visual" : undefined,
      content: [
        o.image?.data.length
          ? h("img", {
              class: "choice-img",
              attrs: { src: blobUrl(o.image.data, o.image.contentType, app.session.blobs), alt: "" },
            })
          : o.swatchColor
            ? swatch(o.swatchColor)
            : null,
        h("span", { class: "choice-label", text: o.label || o.value }),
      ],
    })),
  }).el;
}

function swatch(color: string): HTMLElement {
  const el = h("span", { class: "swatch", attrs: { "aria-hidden": "true" } });
  if (/^#[0-9a-fA-F]{6}$/.test(color)) el.style.backgroundColor = color; // CSSOM: allowed by the CSP
  return el;
}

/** A text input (or a text area) with the keyboard and checks its type asks for. */
function textControl(editor: DraftEditor, f: FormField, inputId: string): HTMLElement {
  const multiline = f.type === FieldType.MULTILINE_TEXT;
  const input = multiline ? h("textarea", { attrs: { rows: Math.min(Math.max(f.maxLines || 3, 2), 5) } }) : h("input");
  const attrs: Attrs = {
    id: inputId,
    "data-testid": `field-${f.id}`,
    "data-input": "",
    placeholder: f.placeholder || undefined,
    maxlength: f.maxLength > 0 ? f.maxLength : undefined,
    "aria-describedby": `${inputId}-err`,
    autocomplete: "off",
    autocapitalize: f.type === FieldType.TEXT || multiline ? "sentences" : "off",
    spellcheck: "false",
    readonly: f.readOnly,
    required: f.required,
    ...(multiline ? {} : inputType(f.type)),
  };
  for (const k of Object.keys(attrs)) {
    const v = attrs[k];
    if (v !== undefined && v !== false) input.setAttribute(k, v === true ? "" : String(v));
  }
  input.value = editor.value(f.id);
  input.addEventListener("input", () => editor.change(f.id, input.value));
  input.addEventListener("blur", () => editor.left(f.id));
  return input;
}

/** The input type and on-screen keyboard of a one-line field. */
function inputType(t: FieldType): Attrs {
  switch (t) {
    case FieldType.EMAIL:
      return { type: "email", inputmode: "email" };
    case FieldType.PHONE:
      return { type: "tel", inputmode: "tel" };
    case FieldType.NUMBER:
      return { type: "text", inputmode: "decimal" };
    case FieldType.DATE:
      return { type: "date" };
    default:
      return { type: "text" };
  }
}

/** The quantity choice, when the product offers more than one. */
export function quantityWidget(editor: DraftEditor, rule: QuantityRule): HTMLElement {
  const error = h("p", { class: "field-error", testid: "field-error-quantity" });
  error.hidden = true;
  const group = radioGroup({
    testid: "field-quantity",
    selected: editor.flow.draft.quantity,
    onPick: (q) => editor.setQuantity(q),
    options: rule.options.map((q) => ({
      value: q,
      testid: `quantity-${q}`,
      class: "choice-small",
      content: String(q),
    })),
  });
  editor.refs.set(QUANTITY, { field: null, wrap: h("div"), error });
  return h(
    "section",
    { class: "section", testid: "section-quantity" },
    h("h2", { class: "section-title", text: "Quantity" }),
    h("div", { class: "field" }, group.el, error),
  );
}
