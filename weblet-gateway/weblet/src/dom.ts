// Tiny DOM helpers: the weblet builds its screens with these (no framework, no innerHTML).

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Props {
  class?: string;
  testid?: string;
  text?: string;
  attrs?: Record<string, string | number | boolean | undefined>;
  on?: { [K in keyof HTMLElementEventMap]?: (ev: HTMLElementEventMap[K]) => void };
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    if (props.class) el.className = props.class;
    if (props.testid) el.setAttribute("data-testid", props.testid);
    if (props.text !== undefined) el.textContent = props.text;
    if (props.attrs) {
      for (const k of Object.keys(props.attrs)) {
        const v = props.attrs[k];
        if (v === undefined || v === false) continue;
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    if (props.on) {
      for (const k of Object.keys(props.on) as (keyof HTMLElementEventMap)[]) {
        el.addEventListener(k, props.on[k] as EventListener);
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (typeof c === "string" || typeof c === "number") el.appendChild(document.createTextNode(String(c)));
    else el.appendChild(c);
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** A big touch button. */
export function button(
  label: Child,
  onClick: () => void,
  opts: {
    kind?: "primary" | "secondary" | "ghost" | "danger";
    testid?: string;
    disabled?: boolean;
    class?: string;
  } = {},
): HTMLButtonElement {
  const b = h(
    "button",
    {
      class: `btn btn-${opts.kind || "secondary"}${opts.class ? ` ${opts.class}` : ""}`,
      testid: opts.testid,
      attrs: { type: "button", disabled: opts.disabled },
      on: { click: () => onClick() },
    },
    label,
  );
  return b;
}

export function spinner(label: string, testid = "loading"): HTMLElement {
  return h(
    "div",
    { class: "state state-loading", testid, attrs: { role: "status", "aria-live": "polite" } },
    h("div", { class: "spinner", attrs: { "aria-hidden": "true" } }),
    h("p", { class: "state-text", text: label }),
  );
}

/** Makes a blob: URL for image bytes; the caller's registry revokes it later. */
export function blobUrl(data: Uint8Array, contentType: string, registry: string[]): string {
  const url = URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: contentType || "image/png" }));
  registry.push(url);
  return url;
}

export function revokeAll(registry: string[]): void {
  for (const u of registry.splice(0)) URL.revokeObjectURL(u);
}
