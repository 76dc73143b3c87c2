// Proves that the committed build output and generated code are what the sources give:
// type-checks, regenerates src/gen/ and rebuilds dist/ into a temporary folder, and fails when
// anything differs from the committed files.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

function files(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

function compare(label, committed, fresh) {
  const a = files(committed);
  const b = files(fresh);
  const problems = [];
  for (const f of b) if (!a.includes(f)) problems.push(`${label}/${f}: missing from the committed files`);
  for (const f of a) if (!b.includes(f)) problems.push(`${label}/${f}: not produced by a rebuild`);
  for (const f of a) {
    if (!b.includes(f)) continue;
    if (!readFileSync(join(committed, f)).equals(readFileSync(join(fresh, f)))) {
      problems.push(`${label}/${f}: differs from a rebuild`);
    }
  }
  return problems;
}

const tmp = mkdtempSync(join(tmpdir(), "weblet-check-"));
try {
  run(process.execPath, [bin("tsc").replace(/\.bin[\\/]tsc$/, "typescript/bin/tsc"), "--noEmit", "-p", "."]);
  run(bin("buf"), ["generate", "--template", "buf.gen.yaml", "--output", join(tmp, "gen-root")]);
  run(process.execPath, [join(root, "scripts", "build.mjs"), join(tmp, "dist")]);
  const problems = [
    ...compare("src/gen", join(root, "src", "gen"), join(tmp, "gen-root", "src", "gen")),
    ...compare("dist", join(root, "dist"), join(tmp, "dist")),
  ];
  if (problems.length) {
    console.error("The committed files are out of date (run `npm run gen && npm run build`):");
    for (const p of problems) console.error(`  ${p}`);
    process.exitCode = 1;
  } else {
    console.log("check: src/gen/ and dist/ match a fresh rebuild");
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
