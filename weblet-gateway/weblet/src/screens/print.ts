// The print options: finalizes the draft (once) and asks the printer what it can do, then copies,
// sides and colour, and Print. A product's pieces are laid out many to a sheet by the core: the
// screen shows how (PlanJob: "100 × … on 12 A4 sheets") with the first sheet's images, planned
// again as the copies and the sides change.
import { customization, LONG, print, SHORT } from "../api";
import { blobUrl, button, type Child, clear, h, revokeAll, spinner } from "../dom";
import { colorLabel, formatPrice, sidesLabel } from "../format";
import { DraftState } from "../gen/podconnect/v1/customization_pb";
import {
  ColorMode,
  type GetPrinterCapabilitiesResponse,
  type PlanJobResponse,
  Sides,
} from "../gen/podconnect/v1/print_pb";
import { layoutWords } from "../layout";
import { nav } from "../routes";
import { alive, failed, type Screen, screen, showProblem } from "../screen";
import { type Flow, hasFields } from "../state";
import { describe, type Problem } from "../status";
import { banner, optionRow, type RadioGroup, radioGroup } from "../widgets";

/** What the person picked; sent with Print. */
interface Choices {
  copies: number;
  sides: Sides;
  color: ColorMode;
  /** Scale a product larger than the paper down to the sheet (offered once PlanJob says so). */
  fit: boolean;
}

/** The most pieces of a product one job may ask for (the core allows 5,000). */
const PIECES_MAX = 5000;
/** How long the copies and the sides rest before the layout is planned again. */
const PLAN_DELAY_MS = 350;
/** The width of each sheet image asked for (CSS px): front and back fit side by side at 800 × 480. */
const SHEET_PREVIEW_PX = 260;

export async function printScreen(flow: Flow): Promise<void> {
  const s = screen({ title: "Print", testid: "screen-print", back: true });
  s.body.appendChild(spinner("Preparing your print file…", "print-loading"));
  let caps: GetPrinterCapabilitiesResponse;
  try {
    caps = await prepare(s, flow);
  } catch (e) {
    if (!failed(s, e)) return;
    const p = describe(e, "finalize");
    if (p.kind === "needs-fixes" && hasFields(flow)) notReady(s, flow, p);
    else showProblem(s, e);
    return;
  }
  if (!alive(s)) return;
  clear(s.body);
  options(s, flow, caps);
}

/** Finalizes the draft into its print file (unless done before) and fetches the capabilities. */
async function prepare(s: Screen, flow: Flow): Promise<GetPrinterCapabilitiesResponse> {
  const [fin, caps] = await Promise.all([
    flow.printFile && flow.draft.state === DraftState.FINALIZED
      ? Promise.resolve(null)
      : customization.finalizeDraft({ draftId: flow.draft.id }, { ...LONG, signal: s.signal }),
    print.getPrinterCapabilities({}, { ...SHORT, signal: s.signal }),
  ]);
  if (fin) {
    flow.printFile = fin.printFile || null;
    if (fin.draft) flow.draft = fin.draft;
  }
  return caps;
}

/** The draft cannot be printed as it is: back to the form to fix it. */
function notReady(s: Screen, flow: Flow, p: Problem): void {
  clear(s.body);
  s.body.appendChild(
    h(
      "div",
      { class: "state state-error", testid: "error" },
      h("div", { class: "state-icon icon-alert", attrs: { "aria-hidden": "true" }, text: "!" }),
      h("h2", { class: "state-title", text: p.title }),
      h("p", { class: "state-text", text: p.message }),
      button("Back to the form", () => backToForm(flow), { kind: "primary", testid: "retry" }),
    ),
  );
}

/** Back to the form the person came from (with everything under it), or a new one on top. */
function backToForm(flow: Flow): void {
  if (!nav.backTo((r) => r.name === "form")) nav.go({ name: "form", product: flow.product, flow });
}

function options(s: Screen, flow: Flow, caps: GetPrinterCapabilitiesResponse): void {
  const cap = caps.capabilities;
  // A product's print file is imposed: its copies are pieces (100 cards), many to a sheet, so the
  // printer's `copies_max` does not bound them; an uploaded file prints as it is, `copies` times.
  const pieces = !!flow.printFile?.trimSize;
  const copiesMax = pieces ? PIECES_MAX : Math.max(1, cap?.copiesMax || 1);
  const suggested = flow.printFile?.suggestedCopies || 1;
  const sidesSupported = cap?.sidesSupported || [];
  const colors = cap?.colorModesSupported || [];
  const picked: Choices = {
    copies: Math.min(Math.max(1, suggested), copiesMax),
    // A product's sides are the core's choice (two-sided for a piece with a back) until the
    // person picks: the layout shows which.
    sides: pieces ? Sides.UNSPECIFIED : cap?.sidesDefault || Sides.UNSPECIFIED,
    color: cap?.colorModeDefault || ColorMode.UNSPECIFIED,
    fit: false,
  };
  const requestId = uuid();
  /** A submit is under way; the layout says the job cannot print as asked. */
  const busy = { sending: false, blocked: false };
  const printBtn = button("Print", () => void submit(), { kind: "primary", testid: "print-button" });
  const printLabel = (n: number): string =>
    pieces ? `Print ${n === 1 ? "1 piece" : `${n} pieces`}` : n === 1 ? "Print 1 copy" : `Print ${n} copies`;
  const updatePrint = (): void => {
    printBtn.disabled = busy.sending || busy.blocked;
  };
  const layout = layoutPanel(s, flow, picked, () => replan(0));
  const copies = copiesStepper(picked.copies, copiesMax, (n) => {
    picked.copies = n;
    if (!busy.sending) printBtn.textContent = printLabel(n);
    replan();
  });
  const sidesPicked = (): Sides => (sidesSupported.length > 1 ? picked.sides : Sides.UNSPECIFIED);

  const rows: Child[] = [
    optionRow(
      pieces ? "Quantity" : "Copies",
      copies.el,
      h("span", {
        class: "option-hint",
        text: `${suggested > 1 ? `Suggested for a quantity of ${flow.draft.quantity}. ` : ""}Up to ${copiesMax}.`,
      }),
    ),
  ];
  let sidesGroup: RadioGroup<Sides> | null = null;
  if (sidesSupported.length > 1) {
    if (!pieces) picked.sides = offered(sidesSupported, picked.sides);
    sidesGroup = settingRow(SIDES, sidesSupported, picked.sides, (v) => {
      picked.sides = v;
      replan();
    });
    rows.push(sidesGroup.el);
  }
  if (colors.length > 1) {
    picked.color = offered(colors, picked.color);
    rows.push(
      settingRow(COLOR, colors, picked.color, (v) => {
        picked.color = v;
      }).el,
    );
  }
  s.body.appendChild(
    h(
      "div",
      { class: "print" },
      caps.acceptingJobs === false
        ? banner(
            "warn",
            `The printer is not accepting jobs right now${caps.printerStateMessage ? `: ${caps.printerStateMessage}` : "."}`,
            "printer-warning",
          )
        : null,
      summary(flow, caps, layout),
      h("div", { class: "options" }, rows),
    ),
  );
  const footStatus = h("div", { class: "footer-status" });
  s.footer.appendChild(footStatus);
  s.footer.appendChild(printBtn);

  // The layout is planned again when the copies or the sides rest for a moment; a newer plan
  // cancels the one under way, and leaving the screen cancels it too.
  let planTimer = 0;
  let planCall: AbortController | null = null;
  const replan = (delay = PLAN_DELAY_MS): void => {
    window.clearTimeout(planTimer);
    planCall?.abort();
    planCall = null;
    layout.pending();
    planTimer = window.setTimeout(() => void plan(), delay);
  };
  s.signal.addEventListener("abort", () => window.clearTimeout(planTimer), { once: true });
  const plan = async (): Promise<void> => {
    const call = new AbortController();
    planCall = call;
    const leave = (): void => call.abort();
    s.signal.addEventListener("abort", leave, { once: true });
    try {
      const res = await print.planJob(
        {
          document: { case: "draftId", value: flow.draft.id },
          copies: picked.copies,
          sides: sidesPicked(),
          fitToSheet: picked.fit,
          previewWidthPx: Math.round(SHEET_PREVIEW_PX * Math.min(window.devicePixelRatio || 1, 2)),
        },
        { ...LONG, signal: call.signal },
      );
      if (!alive(s) || call.signal.aborted) return;
      busy.blocked = false;
      layout.show(res);
      // The core's choice of sides, shown until the person picks their own.
      if (picked.sides === Sides.UNSPECIFIED && res.layout) sidesGroup?.select(res.layout.sides);
    } catch (e) {
      if (call.signal.aborted || !failed(s, e)) return;
      const p = describe(e, "plan");
      busy.blocked = p.kind === "too-large" && !picked.fit;
      layout.problem(p);
    } finally {
      s.signal.removeEventListener("abort", leave);
      if (planCall === call) planCall = null;
      updatePrint();
    }
  };

  copies.set(picked.copies);
  replan(0);

  const submit = async (): Promise<void> => {
    busy.sending = true;
    updatePrint();
    printBtn.textContent = "Sending…";
    clear(footStatus);
    try {
      const submitted = await print.submitJob(
        {
          document: { case: "draftId", value: flow.draft.id },
          copies: picked.copies,
          sides: sidesPicked(),
          colorMode: colors.length > 1 ? picked.color : ColorMode.UNSPECIFIED,
          fitToSheet: picked.fit,
          requestId,
        },
        { ...LONG, signal: s.signal },
      );
      if (!alive(s)) return;
      nav.go({ name: "job", flow, submitted });
    } catch (e) {
      if (!failed(s, e)) return;
      busy.sending = false;
      updatePrint();
      printBtn.textContent = "Try again";
      const p = describe(e);
      footStatus.appendChild(banner("error", `${p.title}: ${p.message}`, "print-error"));
    }
  };
}

/** The layout on the print screen: what PlanJob said (or why it could not say), the first sheet's
 * images, and "Fit to sheet" once a product turned out larger than the paper. */
interface LayoutPanel {
  /** The words (in the summary card). */
  text: HTMLElement;
  /** The sheet images (beside the words). */
  sheets: HTMLElement;
  /** A new plan is on its way: what is shown is out of date. */
  pending(): void;
  show(res: PlanJobResponse): void;
  problem(p: Problem): void;
}

function layoutPanel(s: Screen, flow: Flow, picked: Choices, refit: () => void): LayoutPanel {
  const text = h("div", {
    class: "layout",
    testid: "print-layout",
    attrs: { "data-state": "loading", "aria-live": "polite" },
  });
  const words = h(
    "div",
    { class: "layout-words" },
    h("p", { class: "layout-summary muted", text: "Working out the sheets…" }),
  );
  const fit = h(
    "button",
    {
      class: "choice choice-small fit-toggle",
      testid: "fit-to-sheet",
      attrs: { type: "button", role: "switch", "aria-checked": "false" },
      on: {
        click: () => {
          picked.fit = !picked.fit;
          fit.setAttribute("aria-checked", String(picked.fit));
          refit();
        },
      },
    },
    "Fit to sheet",
  );
  const fitRow = h(
    "div",
    { class: "fit-row" },
    fit,
    h("span", { class: "option-hint", text: "Prints it scaled down to the paper." }),
  );
  fitRow.hidden = true;
  text.appendChild(words);
  text.appendChild(fitRow);
  const sheets = h("div", { class: "sheets", testid: "sheet-previews" });
  // The images of the plan on show; freed when a newer plan replaces them or the screen goes.
  const urls: string[] = [];
  s.signal.addEventListener("abort", () => revokeAll(urls), { once: true });
  const productName = flow.product.displayName || "";
  const state = (st: "loading" | "ready" | "problem"): void => {
    text.setAttribute("data-state", st);
    sheets.setAttribute("data-state", st);
  };
  return {
    text,
    sheets,
    pending: () => state("loading"),
    show: (res) => {
      const l = res.layout;
      const old = urls.splice(0);
      clear(words);
      clear(sheets);
      if (l) {
        const w = layoutWords(l, productName);
        text.setAttribute("data-sheets", String(l.sheetCount));
        text.setAttribute("data-sheet", w.sheetName);
        text.setAttribute("data-pieces", String(l.pieces));
        words.appendChild(h("p", { class: "layout-summary", testid: "layout-summary", text: w.summary }));
        if (w.saving) words.appendChild(h("p", { class: "layout-saving", testid: "layout-saving", text: w.saving }));
        if (w.details)
          words.appendChild(h("p", { class: "layout-details", testid: "layout-details", text: w.details }));
        const onFirst = l.imposed ? Math.min(l.piecesPerSheet || 1, l.pieces || 1) : 1;
        for (const page of res.sheetPreviews) {
          const side = page.pageNumber === 2 ? "back" : "front";
          const url = blobUrl(page.data, page.contentType, urls);
          const alt = `${side === "back" ? "Back" : "Front"} of the first ${w.sheetName || ""} sheet: ${
            onFirst === 1 ? "1 piece" : `${onFirst} pieces`
          } with cut marks`.replace(/\s+/g, " ");
          sheets.appendChild(
            h(
              "figure",
              { class: "sheet" },
              h("img", {
                class: "sheet-img",
                testid: `sheet-preview-${side}`,
                attrs: { src: url, alt, draggable: "false" },
              }),
              h("figcaption", { text: side === "back" ? "Back" : "Front" }),
            ),
          );
        }
      }
      revokeAll(old);
      // Once offered, "Fit to sheet" stays, so the person can turn it off again.
      state("ready");
    },
    problem: (p) => {
      revokeAll(urls);
      clear(words);
      clear(sheets);
      for (const a of ["data-sheets", "data-sheet", "data-pieces"]) text.removeAttribute(a);
      words.appendChild(
        banner(p.kind === "too-large" ? "warn" : "error", `${p.title}: ${p.message}`, "layout-problem"),
      );
      if (p.kind === "too-large") fitRow.hidden = false;
      state("problem");
    },
  };
}

/** A printer setting the person can choose: its label, test ids (`name-ENUM_NAME`) and words. */
interface Setting<T> {
  label: string;
  name: string;
  text: (v: T) => string;
  enumName: (v: T) => string;
}

const SIDES: Setting<Sides> = { label: "Sides", name: "sides", text: sidesLabel, enumName: (v) => Sides[v] };
const COLOR: Setting<ColorMode> = { label: "Colour", name: "color", text: colorLabel, enumName: (v) => ColorMode[v] };

/** `current` when the printer offers it, else the first value it offers. */
function offered<T>(values: T[], current: T): T {
  return values.indexOf(current) < 0 ? values[0] : current;
}

/** One of the printer's settings as a radio group, in its option row (`el`). */
function settingRow<T extends number>(
  setting: Setting<T>,
  values: T[],
  current: T,
  pick: (v: T) => void,
): RadioGroup<T> {
  const group = radioGroup({
    testid: setting.name,
    selected: current,
    onPick: pick,
    options: values.map((v) => ({
      value: v,
      testid: `${setting.name}-${setting.enumName(v)}`,
      class: "choice-small",
      content: setting.text(v),
    })),
  });
  return { el: optionRow(setting.label, group.el), select: group.select };
}

/** What is printed where: the product, its pages and price, and the printer; then how it lays out
 * on the sheets, with the first sheet beside it. */
function summary(flow: Flow, caps: GetPrinterCapabilitiesResponse, layout: LayoutPanel): HTMLElement {
  const pages = flow.printFile?.pageCount || 0;
  const product = h(
    "div",
    { class: "summary-product" },
    h("strong", { text: flow.product.displayName }),
    h("span", {
      text: [
        pages ? `${pages}${pages === 1 ? " page" : " pages"}` : "",
        formatPrice(flow.draft.price || flow.product.price),
      ]
        .filter(Boolean)
        .join(" · "),
    }),
    h("span", { class: "muted", text: `On ${caps.deviceDisplayName || caps.deviceId || "this printer"}` }),
  );
  return h(
    "div",
    { class: "summary", testid: "print-summary" },
    h("div", { class: "summary-text" }, product, layout.text),
    layout.sheets,
  );
}

/** The copies: − and + around the number, from 1 to `max`. */
function copiesStepper(
  initial: number,
  max: number,
  changed: (n: number) => void,
): { el: HTMLElement; set(n: number): void } {
  let copies = initial;
  const value = h("output", { class: "stepper-value", testid: "copies", text: String(copies) });
  const minus = button("−", () => set(copies - 1), { testid: "copies-minus", class: "stepper-btn" });
  const plus = button("+", () => set(copies + 1), { testid: "copies-plus", class: "stepper-btn" });
  minus.setAttribute("aria-label", "Fewer copies");
  plus.setAttribute("aria-label", "More copies");
  const set = (n: number): void => {
    copies = Math.min(Math.max(1, n), max);
    value.textContent = String(copies);
    minus.disabled = copies <= 1;
    plus.disabled = copies >= max;
    changed(copies);
  };
  return { el: h("div", { class: "stepper" }, minus, value, plus), set };
}

/** A random UUID (v4) for the submit's request id, so a retried submit prints once. */
function uuid(): string {
  const c = window.crypto as Crypto & { randomUUID?: () => string };
  if (c.randomUUID) return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.prototype.map.call(b, (n: number) => (n + 0x100).toString(16).slice(1)).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
