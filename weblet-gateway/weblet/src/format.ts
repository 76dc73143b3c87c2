// Formatting of prices, sizes and job states for the screen.
import type { Price, TrimSize } from "./gen/podconnect/v1/catalog_pb";
import { ColorMode, JobState, Sides } from "./gen/podconnect/v1/print_pb";
import { app } from "./state";

const locale = app.locale || "en";

export function formatPrice(p: Price | undefined): string {
  if (!p?.currencyCode) return "";
  try {
    const nf = new Intl.NumberFormat(locale, { style: "currency", currency: p.currencyCode });
    const digits = nf.resolvedOptions().maximumFractionDigits || 0;
    const amount = Number(p.amountMinor) / 10 ** digits;
    const s = nf.format(amount);
    return p.perQuantity > 1 ? `${s} / ${p.perQuantity}` : s;
  } catch {
    return `${Number(p.amountMinor) / 100} ${p.currencyCode}`;
  }
}

function mm(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

export function formatTrim(t: TrimSize | undefined): string {
  if (!t?.widthMm || !t.heightMm) return "";
  return `${mm(t.widthMm)} × ${mm(t.heightMm)} mm`;
}

export function sidesLabel(s: Sides): string {
  switch (s) {
    case Sides.ONE_SIDED:
      return "One-sided";
    case Sides.TWO_SIDED_LONG_EDGE:
      return "Two-sided (book)";
    case Sides.TWO_SIDED_SHORT_EDGE:
      return "Two-sided (flip)";
    default:
      return "Printer default";
  }
}

export function colorLabel(c: ColorMode): string {
  switch (c) {
    case ColorMode.COLOR:
      return "Colour";
    case ColorMode.MONOCHROME:
      return "Black & white";
    default:
      return "Printer default";
  }
}

export function jobStateName(s: JobState): string {
  return JobState[s] || "UNSPECIFIED";
}

export function jobStateLabel(s: JobState): string {
  switch (s) {
    case JobState.PENDING:
      return "Waiting to print";
    case JobState.HELD:
      return "On hold";
    case JobState.PROCESSING:
      return "Printing";
    case JobState.STOPPED:
      return "Printer stopped";
    case JobState.CANCELED:
      return "Canceled";
    case JobState.ABORTED:
      return "Could not print";
    case JobState.COMPLETED:
      return "Printed";
    default:
      return "Sending to the printer";
  }
}

export function isTerminal(s: JobState): boolean {
  return s === JobState.CANCELED || s === JobState.ABORTED || s === JobState.COMPLETED;
}

export function timeOfDay(d: Date): string {
  try {
    return d.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  } catch {
    return d.toISOString().slice(11, 16);
  }
}
