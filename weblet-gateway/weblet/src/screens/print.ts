// The print options: finalizes the draft (once) and asks the printer what it can do, then copies,
// sides and colour, and Print.
import { customization, LONG, print, SHORT } from "../api";
import { button, type Child, clear, h, spinner } from "../dom";
import { colorLabel, formatPrice, sidesLabel } from "../format";
import { DraftState } from "../gen/podconnect/v1/customization_pb";
import { ColorMode, type GetPrinterCapabilitiesResponse, Sides } from "../gen/podconnect/v1/print_pb";
import { nav } from "../routes";
import { alive, failed, type Screen, screen, showProblem } from "../screen";
import { type Flow, hasFields } from "../state";
import { describe, type Problem } from "../status";
import { banner, optionRow, radioGroup } from "../widgets";

/** What the person picked; sent with Print. */
interface Choices {
  copies: number;
  sides: Sides;
  color: ColorMode;
}

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
  const copiesMax = Math.max(1, cap?.copiesMax || 1);
  const suggested = flow.printFile?.suggestedCopies || 1;
  const sidesSupported = cap?.sidesSupported || [];
  const colors = cap?.colorModesSupported || [];
  const picked: Choices = {
    copies: Math.min(Math.max(1, suggested), copiesMax),
    sides: cap?.sidesDefault || Sides.UNSPECIFIED,
    color: cap?.colorModeDefault || ColorMode.UNSPECIFIED,
  };
  const requestId = uuid();
  const printBtn = button("Print", () => void submit(), { kind: "primary", testid: "print-button" });
  const copies = copiesStepper(picked.copies, copiesMax, (n) => {
    picked.copies = n;
    printBtn.textContent = n === 1 ? "Print 1 copy" : `Print ${n} copies`;
  });

  const rows: Child[] = [
    optionRow(
      "Copies",
      copies.el,
      h("span", {
        class: "option-hint",
        text: `${suggested > 1 ? `Suggested for a quantity of ${flow.draft.quantity}. ` : ""}Up to ${copiesMax}.`,
      }),
    ),
  ];
  if (sidesSupported.length > 1) {
    picked.sides = offered(sidesSupported, picked.sides);
    rows.push(
      settingRow(SIDES, sidesSupported, picked.sides, (v) => {
        picked.sides = v;
      }),
    );
  }
  if (colors.length > 1) {
    picked.color = offered(colors, picked.color);
    rows.push(
      settingRow(COLOR, colors, picked.color, (v) => {
        picked.color = v;
      }),
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
      summary(flow, caps),
      h("div", { class: "options" }, rows),
    ),
  );
  const footStatus = h("div", { class: "footer-status" });
  s.footer.appendChild(footStatus);
  s.footer.appendChild(printBtn);
  copies.set(picked.copies);

  const submit = async (): Promise<void> => {
    printBtn.disabled = true;
    printBtn.textContent = "Sending…";
    clear(footStatus);
    try {
      const submitted = await print.submitJob(
        {
          document: { case: "draftId", value: flow.draft.id },
          copies: picked.copies,
          sides: sidesSupported.length > 1 ? picked.sides : Sides.UNSPECIFIED,
          colorMode: colors.length > 1 ? picked.color : ColorMode.UNSPECIFIED,
          requestId,
        },
        { ...LONG, signal: s.signal },
      );
      if (!alive(s)) return;
      nav.go({ name: "job", flow, submitted });
    } catch (e) {
      if (!failed(s, e)) return;
      copies.set(picked.copies);
      printBtn.disabled = false;
      printBtn.textContent = "Try again";
      const p = describe(e);
      footStatus.appendChild(banner("error", `${p.title}: ${p.message}`, "print-error"));
    }
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

/** One of the printer's settings as a radio group. */
function settingRow<T extends number>(setting: Setting<T>, values: T[], current: T, pick: (v: T) => void): HTMLElement {
  return optionRow(
    setting.label,
    radioGroup({
      testid: setting.name,
      selected: current,
      onPick: pick,
      options: values.map((v) => ({
        value: v,
        testid: `${setting.name}-${setting.enumName(v)}`,
        class: "choice-small",
        content: setting.text(v),
      })),
    }).el,
  );
}

/** What is printed where: the product, its pages and price, and the printer. */
function summary(flow: Flow, caps: GetPrinterCapabilitiesResponse): HTMLElement {
  const pages = flow.printFile?.pageCount || 0;
  return h(
    "div",
    { class: "summary", testid: "print-summary" },
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
