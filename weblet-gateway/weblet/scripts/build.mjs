// Builds the weblet into an output folder (default dist/): app.js (bundled, minified), app.css
// (minified) and index.html. Deterministic: the same sources give the same bytes.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(root, process.argv[2] || "dist");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// Printer browsers are WebKit or Chromium builds a few years old: ES2019 is safe.
const target = ["es2019", "chrome70", "safari12", "firefox68"];

await build({
  absWorkingDir: root,
  entryPoints: ["src/main.ts"],
  outfile: join(out, "app.js"),
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  target,
  legalComments: "none",
  charset: "utf8",
  sourcemap: false,
  logLevel: "warning",
});

await build({
  absWorkingDir: root,
  entryPoints: ["src/app.css"],
  outfile: join(out, "app.css"),
  bundle: true,
  minify: true,
  target,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});

copyFileSync(join(root, "src/index.html"), join(out, "index.html"));
console.log("built " + out);
