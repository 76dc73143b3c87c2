// Unit test of the words the print screen shows for a job's layout on the sheets (src/layout.ts,
// bundled on the fly by esbuild): sheet count and size, sides, the saving and the tray.
// Usage: node --test tests/ (npm test)
import assert from "node:assert/strict";
import { test } from "node:test";
import { importTs } from "./bundle.mjs";

const { layoutWords, trayName, Sides } = await importTs(
  `export * from "./src/layout.ts"; export { Sides } from "./src/gen/podconnect/v1/print_pb.ts";`,
  "node",
);

const A4 = { keyword: "iso_a4_210x297mm", displayName: "A4", widthMm: 210, heightMm: 297, source: "" };

/** A PrintLayout as the generated client hands it over (plain fields). */
const layout = (over = {}) => ({
  imposed: true,
  sheet: A4,
  pieces: 100,
  piecesPerSheet: 9,
  sheetCount: 12,
  sides: Sides.TWO_SIDED_SHORT_EDGE,
  backsOnSeparateSheets: false,
  rotated: true,
  scale: 1,
  sheetsOnePerSheet: 100,
  ...over,
});

test("100 business cards on 12 A4 sheets, two-sided, instead of 100 sheets", () => {
  const w = layoutWords(layout(), "Classic Business Card");
  assert.equal(w.summary, "100 × Classic Business Card on 12 A4 sheets, two-sided");
  assert.equal(w.saving, "instead of 100 sheets");
  assert.equal(w.details, "9 per sheet");
  assert.equal(w.sheetName, "A4");
});

test("without a product name the pieces are pieces; one-sided backs print on separate sheets", () => {
  const w = layoutWords(
    layout({ sides: Sides.ONE_SIDED, backsOnSeparateSheets: true, sheetCount: 24, sheetsOnePerSheet: 200 }),
    "",
  );
  assert.equal(w.summary, "100 pieces on 24 A4 sheets, one-sided, the backs on separate sheets");
  assert.equal(w.saving, "instead of 200 sheets");
});

test("the tray is named, and a piece scaled down to the sheet says so", () => {
  const w = layoutWords(
    layout({
      sheet: { ...A4, source: "tray-2" },
      pieces: 1,
      piecesPerSheet: 1,
      sheetCount: 1,
      sheetsOnePerSheet: 1,
      scale: 0.69,
      sides: Sides.ONE_SIDED,
    }),
    "A3 Poster",
  );
  assert.equal(w.summary, "1 × A3 Poster on 1 A4 sheet, one-sided");
  assert.equal(w.saving, "", "no saving when one per sheet takes as many sheets");
  assert.equal(w.details, "paper from tray 2 · scaled to 69 % to fit the sheet");
});

test("a file printed as it is counts copies", () => {
  const w = layoutWords(
    layout({
      imposed: false,
      pieces: 3,
      piecesPerSheet: 1,
      sheetCount: 6,
      sheetsOnePerSheet: 6,
      sides: Sides.ONE_SIDED,
    }),
    "Upload",
  );
  assert.equal(w.summary, "3 copies on 6 A4 sheets, one-sided");
  assert.equal(w.saving, "");
});

test("trays as a person says them", () => {
  assert.equal(trayName("tray-1"), "tray 1");
  assert.equal(trayName("main"), "the main tray");
  assert.equal(trayName("by-pass-tray"), "the bypass tray");
  assert.equal(trayName("large-capacity"), "the large capacity tray");
  assert.equal(trayName(""), "");
  assert.equal(trayName("auto"), "");
});
