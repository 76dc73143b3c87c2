// The preview: the draft rendered page by page (buttons, dots and swipes), then Edit or on to the
// print options.
import { customization, LONG } from "../api";
import { button, clear, h, spinner } from "../dom";
import { nav } from "../routes";
import { alive, failed, screen, showProblem } from "../screen";
import { type Flow, hasFields } from "../state";
import { emptyState } from "../widgets";

/** A horizontal move of this many pixels or more turns the page. */
const SWIPE_PX = 40;

interface Page {
  url: string;
  n: number;
}

export async function previewScreen(flow: Flow): Promise<void> {
  const s = screen({ title: "Preview", testid: "screen-preview", back: true });
  s.body.appendChild(spinner("Rendering your preview…", "preview-loading"));
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  const widthPx = Math.max(400, Math.min(1600, Math.round(Math.min(window.innerWidth, 1024) * 0.8 * dpr)));
  let pages: Page[];
  let pageCount = 0;
  try {
    const res = await customization.renderPreview({ draftId: flow.draft.id, widthPx }, { ...LONG, signal: s.signal });
    if (!alive(s)) return;
    pageCount = res.pageCount || res.pages.length;
    pages = res.pages.map((p) => ({ url: s.image(p.data, p.contentType), n: p.pageNumber }));
  } catch (e) {
    if (failed(s, e)) showProblem(s, e);
    return;
  }
  clear(s.body);
  s.body.appendChild(
    pages.length
      ? pager(pages, pageCount)
      : emptyState("No preview", "The print shop returned no pages to show.", "preview-empty"),
  );
  if (hasFields(flow)) s.footer.appendChild(button("Edit", () => nav.back(), { testid: "edit" }));
  s.footer.appendChild(
    button("Print options", () => nav.go({ name: "print", flow }), { kind: "primary", testid: "to-print" }),
  );
}

/** The pages one at a time: ‹ and › buttons, a dot per page, and swipes. */
function pager(pages: Page[], pageCount: number): HTMLElement {
  let i = 0;
  const img = h("img", { class: "preview-img", testid: "preview-image", attrs: { draggable: "false", alt: "" } });
  const label = h("span", { class: "preview-page", testid: "preview-page" });
  const prev = button("‹", () => go(i - 1), { testid: "preview-prev", class: "pager" });
  const next = button("›", () => go(i + 1), { testid: "preview-next", class: "pager" });
  prev.setAttribute("aria-label", "Previous page");
  next.setAttribute("aria-label", "Next page");
  const dots = h(
    "span",
    { class: "dots", attrs: { "aria-hidden": "true" } },
    pages.map(() => h("span", { class: "dot" })),
  );
  const go = (to: number): void => {
    if (to < 0 || to >= pages.length) return;
    i = to;
    img.src = pages[i].url;
    img.alt = `Preview of page ${pages[i].n}`;
    img.setAttribute("data-page", String(pages[i].n));
    label.textContent = `Page ${pages[i].n} of ${pageCount}`;
    prev.disabled = i === 0;
    next.disabled = i === pages.length - 1;
    Array.prototype.forEach.call(dots.children, (d: Element, k: number) => d.classList.toggle("on", k === i));
  };
  const stage = h("div", { class: "preview-stage", testid: "preview-stage" }, img);
  onSwipe(stage, (forward) => go(forward ? i + 1 : i - 1));
  go(0);
  return h(
    "div",
    { class: "preview" },
    h("div", { class: "preview-row" }, prev, stage, next),
    h("div", { class: "preview-meta" }, label, pages.length > 1 ? dots : null),
    h("p", { class: "preview-note", text: "The PREVIEW mark is not printed." }),
  );
}

/** Calls `turn(true)` for a swipe to the left (next page), `turn(false)` for one to the right. */
function onSwipe(el: HTMLElement, turn: (forward: boolean) => void): void {
  let x0 = 0;
  let y0 = 0;
  let tracking = false;
  el.addEventListener(
    "touchstart",
    (e) => {
      if (e.touches.length !== 1) return;
      tracking = true;
      x0 = e.touches[0].clientX;
      y0 = e.touches[0].clientY;
    },
    { passive: true },
  );
  el.addEventListener("touchend", (e) => {
    if (!tracking) return;
    tracking = false;
    const t = e.changedTouches[0];
    const dx = t.clientX - x0;
    const dy = t.clientY - y0;
    if (Math.abs(dx) >= SWIPE_PX && Math.abs(dx) > Math.abs(dy)) turn(dx < 0);
  });
  el.addEventListener("touchcancel", () => {
    tracking = false;
  });
}
