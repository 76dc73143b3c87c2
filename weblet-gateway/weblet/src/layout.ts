// The words for how a job lays out on the printer's sheets (PrintLayout, from PlanJob): "100 ×
// Classic Business Card on 12 A4 sheets, two-sided", what that saves, and where the paper comes
// from. Kept free of the DOM so it can be unit-tested (tests/layout.test.mjs).
import { type PrintLayout, Sides } from "./gen/podconnect/v1/print_pb";

/** What the print screen says about a layout. */
export interface LayoutWords {
  /** "100 × Classic Business Card on 12 A4 sheets, two-sided". */
  summary: string;
  /** "9 per sheet · paper from tray 1 · scaled to 71 %"; "" when there is nothing to add. */
  details: string;
  /** "instead of 200 sheets" when imposition saves paper, else "". */
  saving: string;
  /** The sheet's name as the summary says it ("A4"). */
  sheetName: string;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Whether `sides` prints on both sides of the sheet. */
export function twoSided(sides: Sides): boolean {
  return sides === Sides.TWO_SIDED_LONG_EDGE || sides === Sides.TWO_SIDED_SHORT_EDGE;
}

/** The tray an IPP `media-source` keyword names, as a person says it: "tray-1" → "tray 1",
 * "main" → "the main tray", "by-pass-tray" → "the bypass tray"; "" for none. */
export function trayName(source: string): string {
  const s = (source || "").trim().toLowerCase();
  if (!s || s === "auto") return "";
  const numbered = /^(tray|roll)-(\d+)$/.exec(s);
  if (numbered) return `${numbered[1]} ${numbered[2]}`;
  if (s === "by-pass-tray" || s === "bypass-tray" || s === "by-pass") return "the bypass tray";
  if (s === "manual") return "the manual feed";
  const words = s.replace(/-/g, " ");
  return /\btray$/.test(words) ? `the ${words}` : `the ${words} tray`;
}

/** The words for `layout`; `productName` names the pieces ("pieces" when it is empty). */
export function layoutWords(layout: PrintLayout, productName: string): LayoutWords {
  const sheet = layout.sheet;
  const sheetName = (sheet?.displayName || sheet?.keyword || "").trim();
  const pieces = layout.pieces;
  const what = layout.imposed
    ? productName
      ? `${pieces} × ${productName}`
      : plural(pieces, "piece", "pieces")
    : plural(pieces, "copy", "copies");
  const sheets = `${layout.sheetCount} ${sheetName ? `${sheetName} ` : ""}${layout.sheetCount === 1 ? "sheet" : "sheets"}`;
  let sides = "";
  if (twoSided(layout.sides)) sides = "two-sided";
  else if (layout.sides === Sides.ONE_SIDED) {
    sides = layout.backsOnSeparateSheets ? "one-sided, the backs on separate sheets" : "one-sided";
  } else if (layout.backsOnSeparateSheets) sides = "the backs on separate sheets";
  const summary = `${what} on ${sheets}${sides ? `, ${sides}` : ""}`;

  const details: string[] = [];
  if (layout.imposed && layout.piecesPerSheet > 1) details.push(`${layout.piecesPerSheet} per sheet`);
  const tray = trayName(sheet?.source || "");
  if (tray) details.push(`paper from ${tray}`);
  if (layout.imposed && layout.scale > 0 && layout.scale < 0.995) {
    details.push(`scaled to ${Math.round(layout.scale * 100)} % to fit the sheet`);
  }
  const saving =
    layout.sheetsOnePerSheet > layout.sheetCount && layout.sheetCount > 0
      ? `instead of ${plural(layout.sheetsOnePerSheet, "sheet", "sheets")}`
      : "";
  return { summary, details: details.join(" · "), saving, sheetName };
}
