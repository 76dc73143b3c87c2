// Bundles a piece of the weblet's TypeScript with esbuild and imports it, so the unit tests run
// the sources as they are, with no build step first.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * What `contents` exports: TypeScript, with paths from the weblet's folder (e.g.
 * `export * from "./src/nav.ts"`). `platform` "node" also resolves npm packages for node.
 */
export async function importTs(contents, platform = "neutral") {
  const bundle = await build({
    absWorkingDir: root,
    stdin: { contents, resolveDir: root, loader: "ts" },
    bundle: true,
    format: "esm",
    platform,
    write: false,
    logLevel: "warning",
  });
  return import(`data:text/javascript,${encodeURIComponent(bundle.outputFiles[0].text)}`);
}
