// Builds the weblet into an output folder (default dist/): app.js (bundled, minified), app.css
// (minified) and index.html, each also brotli- and gzip-compressed beside it (`.br`, `.gz`) so the
// gateway serves them without compressing per request. Deterministic: the same sources give the
// same bytes.

import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "esbuild";

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

// Best compression once here, instead of brotli's slow default on every request at the gateway.
for (const name of ["app.js", "app.css", "index.html"]) {
  const bytes = readFileSync(join(out, name));
  const brotli = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  writeFileSync(join(out, `${name}.br`), brotli);
  // gzip's header carries no timestamp here (zlib writes 0), so the bytes are reproducible.
  writeFileSync(join(out, `${name}.gz`), gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION }));
}
console.log(`built ${out}`);
