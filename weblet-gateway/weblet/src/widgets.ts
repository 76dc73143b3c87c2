// Shared widgets: states (loading is in dom.ts), banners, the radio group every set of choices
// uses, the copies stepper and product thumbnails.

import { catalog, SHORT } from "./api";
import { blobUrl, button, type Child, clear, h } from "./dom";
import { app } from "./state";
import type { Problem } from "./status";

/** A designed error state: what happened and a way forward. Never a blank screen. */
export function problemBlock(
  p: Problem,
  retry: () => void,
  restart: () => void,
  retryLabel = "Try again",
): HTMLElement {
  return h(
    "div",
    { class: "state state-error", testid: "error", attrs: { role: "alert" } },
    h("div", { class: "state-icon icon-alert", attrs: { "aria-hidden": "true" }, text: "!" }),
    h("h2", { class: "state-title", testid: "error-title", text: p.title }),
    h("p", { class: "state-text", testid: "error-message", text: p.message }),
    p.sessionEnded
      ? button("Start again", restart, { kind: "primary", testid: "retry" })
      : button(retryLabel, retry, { kind: "primary", testid: "retry" }),
  );
}

export function emptyState(title: string, text: string, testid = "empty"): HTMLElement {
  return h(
    "div",
    { class: "state state-empty", testid },
    h("div", { class: "state-icon icon-empty", attrs: { "aria-hidden": "true" } }),
    h("h2", { class: "state-title", text: title }),
    h("p", { class: "state-text", text }),
  );
}

export function banner(
  kind: "error" | "info" | "warn",
  text: Child,
  testid: string,
  action?: HTMLElement,
): HTMLElement {
  return h(
    "div",
    { class: `banner banner-${kind}`, testid, attrs: { role: kind === "error" ? "alert" : "status" } },
    h("span", { class: "banner-text" }, text),
    action || null,
  );
}

export interface RadioOption<T> {
  value: T;
  testid: string;
  content: Child;
  /** Classes beside `choice` (e.g. `choice-small`). */
  class?: string;
}

export interface RadioGroup<T> {
  el: HTMLElement;
  /** Marks `value` as the chosen one (without calling `onPick`). */
  select(value: T): void;
}

/** A row of touch buttons of which one is chosen (ARIA radiogroup). A tap marks the option and
 * calls `onPick`. */
export function radioGroup<T extends string | number>(opts: {
  testid: string;
  options: RadioOption<T>[];
  selected: T | undefined;
  onPick: (value: T) => void;
  disabled?: boolean;
  attrs?: Record<string, string | boolean>;
}): RadioGroup<T> {
  const buttons = opts.options.map((o) =>
    h(
      "button",
      {
        class: `choice${o.class ? ` ${o.class}` : ""}`,
        testid: o.testid,
        attrs: {
          type: "button",
          role: "radio",
          "aria-checked": o.value === opts.selected ? "true" : "false",
          disabled: opts.disabled,
          "data-value": o.value,
        },
        on: {
          click: () => {
            select(o.value);
            opts.onPick(o.value);
          },
        },
      },
      o.content,
    ),
  );
  const select = (value: T): void => {
    for (const b of buttons) {
      b.setAttribute("aria-checked", b.getAttribute("data-value") === String(value) ? "true" : "false");
    }
  };
  const el = h("div", { class: "choices", testid: opts.testid, attrs: { role: "radiogroup", ...opts.attrs } }, buttons);
  return { el, select };
}

/** An option row of the print screen: its label and its control. */
export function optionRow(label: string, ...children: Child[]): HTMLElement {
  return h("div", { class: "option" }, h("span", { class: "option-label", text: label }), children);
}

/** A product image, loaded once per session and shared by every screen that shows it. */
export function thumbImage(productId: string, alt: string, testid: string, cls: string): HTMLElement {
  const box = h("div", { class: `${cls} thumb-loading`, testid });
  thumbnail(productId).then(
    (url) => {
      const img = h("img", { attrs: { src: url, alt, draggable: "false" } });
      clear(box);
      box.appendChild(img);
      box.classList.remove("thumb-loading");
    },
    () => {
      box.classList.remove("thumb-loading");
      box.classList.add("thumb-missing");
    },
  );
  return box;
}

function thumbnail(productId: string): Promise<string> {
  const session = app.session;
  let p = session.thumbs.get(productId);
  if (!p) {
    p = catalog.getThumbnail({ productId }, SHORT).then((r) => blobUrl(r.data, r.contentType, session.blobs));
    p.catch(() => session.thumbs.delete(productId));
    session.thumbs.set(productId, p);
  }
  return p;
}
