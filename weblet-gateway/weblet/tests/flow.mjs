// Browser end-to-end walks of the weblet in headless Chromium (playwright-core). The print walk
// (`--scenario print`, the default): home → a subcategory's product and Back (to that subcategory,
// its parent, home) → category → customizable product → form (with an inline email error) →
// preview → print (the layout on the sheets and the first sheet's front and back, at 800 × 480 and
// again at 1024 × 600) → job COMPLETED → exit. The single sign-on walk (`--scenario sso`): without a
// device user there is no "remember me"; launched with a device-user assertion, log in with
// "remember me", exit, launch again: signed in with nothing typed; "Forget me"; launch again: not
// signed in. The uStore walk (`--scenario ustore`, against a core whose storefront is the uStore
// test double, tests/src/ustore): home shows uStore's categories → Stationery → Business cards →
// the business card, anonymously → Back home, log in through the account screen (the trade-only
// category appears) → the business card again → customize: a name uStore refuses shows uStore's
// "reserved" message on the Name field, fixed; ShowPhone Yes makes the conditional Phone field
// appear, filled → preview (an image) → print (its layout on the sheets) → job COMPLETED → exit.
// All of them then prove the browser kept nothing (no cookies, storage or IndexedDB). Any console
// error or page error (CSP violations included) fails the run. One numbered screenshot per step.
//
// The browser trusts the gateway's development CA the way a kiosk's IT team would make it: the CA
// goes into the NSS database under the browser's HOME ($HOME/.pki/nssdb, where Chromium on Linux
// looks for locally trusted roots), and certificate errors are never ignored. Before the CA goes
// in, the same browser setup must refuse the gateway with net::ERR_CERT_AUTHORITY_INVALID, which
// proves the walk's success comes from that trust and nothing else.
//
// Usage: node tests/flow.mjs [--url https://localhost:8443/?device=mfd-lobby] [--out DIR]
//        [--chromium /usr/bin/chromium] [--ca ../../.data/podconnect/tls/dev-ca.pem]
//        [--home EMPTY-DIR] [--certutil certutil]
//        [--scenario print|sso|ustore] [--assertion JWT] [--user NAME --password PW --display-name NAME]
// sso needs --assertion, --user, --password and --display-name; ustore needs --user, --password
// and --display-name (an account of the uStore double, e.g. ben@example.com).
// --home is the browser's HOME (its NSS database goes in there); without it a temporary folder is
// made and removed at the end. certutil comes from Debian's libnss3-tools.
// Exits 0 when every step passed, 1 with a message on stderr otherwise.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: "https://localhost:8443/?device=mfd-lobby" },
    out: { type: "string", default: "../../tests/artifacts/weblet" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
    ca: { type: "string", default: "../../.data/podconnect/tls/dev-ca.pem" },
    home: { type: "string" },
    certutil: { type: "string", default: process.env.CERTUTIL || "certutil" },
    scenario: { type: "string", default: "print" },
    assertion: { type: "string", default: "" },
    user: { type: "string", default: "" },
    password: { type: "string", default: "" },
    "display-name": { type: "string", default: "" },
  },
});
if (!["print", "sso", "ustore"].includes(opts.scenario)) {
  console.error(`flow: unknown --scenario ${opts.scenario} (print, sso or ustore)`);
  process.exit(1);
}
if (opts.scenario === "sso" && !(opts.assertion && opts.user && opts.password && opts["display-name"])) {
  console.error("flow: --scenario sso needs --assertion, --user, --password and --display-name");
  process.exit(1);
}
if (opts.scenario === "ustore" && !(opts.user && opts.password && opts["display-name"])) {
  console.error("flow: --scenario ustore needs --user, --password and --display-name");
  process.exit(1);
}

/** Timeouts (ms): one UI step, the print job to complete, the whole run. */
const STEP = 15_000;
const JOB = 45_000;
const OVERALL = 110_000;

const CATEGORY = "business-cards";
const PRODUCT = "classic-business-card";
/** A category with subcategories, one of them, and a product in it (for Back). */
const GROUP = "marketing";
const GROUP_TITLE = "Marketing";
const SUBCATEGORY = "flyers";
const SUBCATEGORY_TITLE = "Flyers";
const SUBCATEGORY_PRODUCT = "a4-flyer";

/** The uStore walk's ids and names: fixtures of the uStore test double's store
 * (tests/src/ustore/fixtures.rs), GUIDs as uStore has them; not the sample shop's. */
const USTORE = {
  stationery: "ca7e0000-0000-4000-8000-000000000101",
  stationeryTitle: "Stationery",
  businessCards: "ca7e0000-0000-4000-8000-000000000102",
  businessCardsTitle: "Business cards",
  /** Seen only by accounts in the "trade" group (ben). */
  trade: "ca7e0000-0000-4000-8000-000000000104",
  card: "9d0d0000-0000-4000-8000-000000000201",
  cardName: "Business card",
  cardTrim: "85 × 55 mm",
  /** The double refuses any name containing "forbidden" with "This name is reserved; …". */
  refusedName: "Forbidden Name",
  name: "Ben Okafor",
  jobTitle: "Print buyer",
  phone: "+44 20 7946 0018",
};

const out = resolve(opts.out);
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) if (f.endsWith(".png")) rmSync(join(out, f));

const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(2)}s]`, ...a);

class Failure extends Error {}
function check(cond, message) {
  if (!cond) throw new Failure(message);
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  console.error(`flow: cannot load playwright-core (run \`npm ci\` in weblet-gateway/weblet): ${e.message}`);
  process.exit(1);
}

/** The nickname of the CA in the browser's NSS database. */
const CA_NICKNAME = "podconnect-dev-ca";
const caFile = resolve(opts.ca);
/** The browser's HOME: the caller's folder, or one of ours that `cleanUp` removes. */
const ownHome = !opts.home;
const home = ownHome ? mkdtempSync(join(tmpdir(), "weblet-browser-home-")) : resolve(opts.home);
const nssdb = `sql:${join(home, ".pki", "nssdb")}`;

// A hard stop, whatever hangs: the harness above waits for us with its own bound.
const watchdog = setTimeout(() => {
  console.error(`flow: FAILED: the whole run took longer than ${OVERALL / 1000} s`);
  if (ownHome) rmSync(home, { recursive: true, force: true });
  process.exit(1);
}, OVERALL);

/** Problems seen by the listeners; checked after every step. */
const problems = [];
/** Whether a failure message already lists `problems`. */
let reported = false;
/** grpc-web calls: method path and bearer token, in order. */
const calls = [];

let browser;
/** The browser that must refuse the gateway before the CA is trusted. */
let untrusted;
let context;
let page;
let shotNo = 0;

async function shot(name) {
  shotNo += 1;
  const file = join(out, `${String(shotNo).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

function assertNoProblems(where) {
  if (problems.length) {
    reported = true;
    throw new Failure(`${where}: the browser reported:\n  ${problems.join("\n  ")}`);
  }
}

/** Runs one step, then requires a clean console and takes its screenshot. */
async function step(name, fn) {
  log(`step: ${name}`);
  await fn();
  assertNoProblems(name);
  await shot(name);
}

const t = (id) => page.getByTestId(id);

/** Runs certutil on the browser's NSS database; its output, or a Failure saying what it said. */
function certutil(...args) {
  try {
    return execFileSync(opts.certutil, [...args, "-d", nssdb], { encoding: "utf8", timeout: 10_000, stdio: "pipe" });
  } catch (e) {
    const said = `${e.stdout || ""}${e.stderr || ""}`.trim();
    throw new Failure(`certutil ${args.join(" ")} failed: ${e.message}${said ? `\n${said}` : ""}`);
  }
}

/** Chromium with HOME pointing at the throw-away NSS database; certificate errors are not ignored. */
const launch = () =>
  chromium.launch({
    executablePath: opts.chromium,
    env: { ...process.env, HOME: home },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
    timeout: 30_000,
  });

/** Closes whatever browser is still open and removes a HOME of our own. */
async function cleanUp() {
  await untrusted?.close().catch(() => {});
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
  if (ownHome) rmSync(home, { recursive: true, force: true });
}

/** The subject of the CA the browser is made to trust. */
let caSubject = "";

/** The first load: the page over verified TLS with its CSP, the home screen's category tiles (the
 * one with id `category` among them). */
async function openHome(category) {
  const response = await page.goto(opts.url, { waitUntil: "load" });
  check(response?.ok(), `GET ${opts.url} answered ${response?.status()}`);
  check(
    (response.headers()["content-security-policy"] || "").includes("default-src"),
    "the page came without a Content-Security-Policy",
  );
  // The certificate was verified, not waved through: its issuer is the CA trusted above.
  const tls = await response.securityDetails();
  check(
    tls?.issuer && caSubject.split("\n").includes(`CN=${tls.issuer}`),
    `the page's certificate was not issued by ${caSubject}: ${JSON.stringify(tls)}`,
  );
  log(`certificate for ${tls.subjectName} issued by ${tls.issuer} (${tls.protocol}), trusted via NSS`);
  await t("screen-home").waitFor();
  await t(`category-${category}`).waitFor();
  const tiles = await t("category-list").locator("[data-category-id]").count();
  check(tiles >= 2, `expected the category tiles, found ${tiles}`);
  // From navigation start to tappable category tiles (session started, categories loaded).
  const firstScreenMs = await page.evaluate(() => Math.round(performance.now()));
  log(`first screen usable after ${firstScreenMs} ms (navigation start to category tiles)`);
}

/** The preview image shows page `n`, decoded with a real size. */
async function previewShows(n) {
  await page.waitForFunction(
    (want) => {
      const img = document.querySelector('[data-testid="preview-image"]');
      return img && img.getAttribute("data-page") === String(want) && img.complete && img.naturalWidth > 0;
    },
    n,
    { timeout: STEP },
  );
  const size = await t("preview-image").evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  check(size[0] > 0 && size[1] > 0, `preview page ${n} has no size`);
  log(`preview page ${n}: ${size[0]} x ${size[1]} px, "${await t("preview-page").textContent()}"`);
}

/** The print screen shows how `pieces` business cards lay out on the printer's sheets (PlanJob):
 * a summary naming the sheet count and the sheet size, fewer sheets than cards, and the first
 * sheet's front and back as decoded images; the Print button stays on screen at this viewport. */
async function printLayoutShows(pieces, where) {
  try {
    await page.waitForFunction(
      (want) => {
        const el = document.querySelector('[data-testid="print-layout"]');
        return el?.getAttribute("data-state") !== "loading" && el?.getAttribute("data-pieces") === String(want);
      },
      pieces,
      { timeout: STEP },
    );
  } catch {
    const state = await t("print-layout")
      .evaluate(
        (el) => `${el.getAttribute("data-state")} (pieces ${el.getAttribute("data-pieces")}): ${el.textContent}`,
      )
      .catch(() => "(no print-layout element)");
    throw new Failure(`${where}: the print screen shows no layout for ${pieces} cards: ${state}`);
  }
  const layout = t("print-layout");
  const state = await layout.getAttribute("data-state");
  check(state === "ready", `${where}: the layout is ${state}: ${await layout.textContent()}`);
  const sheets = Number(await layout.getAttribute("data-sheets"));
  const sheet = (await layout.getAttribute("data-sheet")) || "";
  const summary = ((await t("layout-summary").textContent()) || "").trim();
  check(sheets >= 1 && sheets < pieces, `${where}: ${pieces} cards take ${sheets} sheets: not imposed? ${summary}`);
  check(sheet.length > 0, `${where}: the layout names no sheet size: ${summary}`);
  check(
    summary.includes(`${pieces} ×`) && summary.includes(`on ${sheets} ${sheet} sheet`),
    `${where}: the summary does not name ${pieces} pieces on ${sheets} ${sheet} sheets: ${JSON.stringify(summary)}`,
  );
  const saving = ((await t("layout-saving").textContent()) || "").trim();
  check(/^instead of \d+ sheets$/.test(saving), `${where}: no saving shown: ${JSON.stringify(saving)}`);
  for (const side of ["front", "back"]) {
    const img = t(`sheet-preview-${side}`);
    check((await img.count()) === 1, `${where}: there is no ${side} sheet preview`);
    await page.waitForFunction(
      (id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        return el?.complete && el.naturalWidth > 0;
      },
      `sheet-preview-${side}`,
      { timeout: STEP },
    );
    const [w, h, alt] = await img.evaluate((el) => [el.naturalWidth, el.naturalHeight, el.alt]);
    check(w > 0 && h > 0, `${where}: the ${side} sheet preview has no size`);
    check(alt.length > 0, `${where}: the ${side} sheet preview has no alt text`);
    await img.scrollIntoViewIfNeeded();
    check(await img.isVisible(), `${where}: the ${side} sheet preview is not visible`);
    if (side === "front") log(`${where}: ${summary}, ${saving}; ${side} ${w} x ${h} px "${alt}"`);
  }
  // Nothing spills sideways, and the Print button is whole and on screen.
  const fits = await page.evaluate(() => {
    const body = document.querySelector(".screen .body");
    const btn = document.querySelector('[data-testid="print-button"]')?.getBoundingClientRect();
    return {
      sideways: body ? body.scrollWidth - body.clientWidth : -1,
      page: document.documentElement.scrollWidth - window.innerWidth,
      button: btn && [btn.left, btn.top, btn.right, btn.bottom],
      view: [window.innerWidth, window.innerHeight],
    };
  });
  check(
    fits.sideways === 0 && fits.page <= 0,
    `${where}: the print screen overflows sideways: ${JSON.stringify(fits)}`,
  );
  const [l, top, r, b] = fits.button || [];
  check(
    fits.button && l >= 0 && top >= 0 && r <= fits.view[0] && b <= fits.view[1],
    `${where}: the Print button is not wholly on screen: ${JSON.stringify(fits)}`,
  );
}

/** The done screen says how the job's `pieces` were laid out: "100 × … on 12 A4 sheets, …". */
async function doneShowsLayout(pieces, where) {
  const text = ((await t("done-layout").textContent({ timeout: STEP })) || "").trim();
  check(
    text.startsWith(`${pieces} ×`) && /on \d+ \S+ sheets/.test(text),
    `${where}: the done screen does not say how ${pieces} pieces were laid out: ${JSON.stringify(text)}`,
  );
  log(`${where}: ${text}`);
}

/** The job screen reaches COMPLETED (or the done screen, reached only from COMPLETED). */
async function jobCompletes() {
  // The job screen shows COMPLETED for 0.9 s before the done screen replaces it; a slow step may
  // miss that window, so either proves it.
  const completed = page.locator('[data-testid="job-state"][data-state="COMPLETED"], [data-testid="screen-done"]');
  try {
    await completed.first().waitFor({ timeout: JOB });
    if (await t("screen-done").count()) log("job state: COMPLETED (already on the done screen)");
    else log("job state: COMPLETED");
  } catch {
    const state = await t("job-state")
      .getAttribute("data-state")
      .catch(() => "(gone)");
    const message = await t("job-message")
      .textContent()
      .catch(() => "");
    throw new Failure(`the job did not complete within ${JOB / 1000} s: last state ${state} ${message}`);
  }
}

/** The print walk: browse, customize, preview, print, watch the job, exit. */
async function printWalk() {
  await step("home", () => openHome(CATEGORY));

  await step("subcategory", async () => {
    await t(`category-${GROUP}`).click();
    await t(`subcategory-${SUBCATEGORY}`).click();
    await titled(SUBCATEGORY_TITLE);
    await t(`product-${SUBCATEGORY_PRODUCT}`).waitFor();
  });

  await step("back-to-subcategory", async () => {
    // Back from a product returns to the category the person came from, not to its parent or home.
    await t(`product-${SUBCATEGORY_PRODUCT}`).click();
    await t("screen-product").waitFor();
    await t("back").click();
    await t("screen-category").waitFor();
    await titled(SUBCATEGORY_TITLE);
    await t(`product-${SUBCATEGORY_PRODUCT}`).waitFor();
    await t("back").click();
    await titled(GROUP_TITLE);
    await t(`subcategory-${SUBCATEGORY}`).waitFor();
    await t("back").click();
    await t("screen-home").waitFor();
  });

  await step("category", async () => {
    await t(`category-${CATEGORY}`).click();
    await t("screen-category").waitFor();
    await t(`product-${PRODUCT}`).waitFor();
  });

  await step("product", async () => {
    await t(`product-${PRODUCT}`).click();
    await t("screen-product").waitFor();
    await t("customize").waitFor();
    const name = (await t("product-name").textContent()) || "";
    check(name.includes("Classic Business Card"), `unexpected product name ${JSON.stringify(name)}`);
  });

  await step("form", async () => {
    await t("customize").click();
    await t("screen-form").waitFor();
    await t("field-initials").waitFor();
  });

  await step("form-email-error", async () => {
    await t("field-initials").fill("AK");
    await t("field-company").fill("Keller Architects");
    await t("field-name").fill("Anna Keller");
    await t("field-email").fill("not-an-email");
    await t("field-email").blur();
    const error = t("field-error-email");
    await error.waitFor({ state: "visible" });
    const text = ((await error.textContent()) || "").trim();
    check(text.length > 0, "the email error is visible but empty");
    log(`email error: ${JSON.stringify(text)}`);
    check(
      (await t("field-email").getAttribute("aria-invalid")) === "true",
      "the invalid email input is not marked aria-invalid",
    );
    await error.scrollIntoViewIfNeeded();
  });

  await step("form-control-character", async () => {
    // A pasted invisible control character is the person's to fix: shown on its field.
    await t("field-company").fill("Keller\u001bArchitects");
    await t("field-company").blur();
    const error = t("field-error-company");
    await error.waitFor({ state: "visible" });
    const text = ((await error.textContent()) || "").trim();
    check(/control character/.test(text), `the company error does not name the character: ${JSON.stringify(text)}`);
    log(`control character error: ${JSON.stringify(text)}`);
    await t("field-company").fill("Keller Architects");
    await t("field-company").blur();
    await t("field-error-company").waitFor({ state: "hidden" });
  });

  await step("form-valid", async () => {
    await t("field-email").fill("anna@keller-architects.de");
    await t("field-email").blur();
    await t("field-error-email").waitFor({ state: "hidden" });
    await page.waitForFunction(() => document.querySelectorAll(".field.invalid").length === 0, null, { timeout: STEP });
    check(
      (await t("field-email").getAttribute("aria-invalid")) === "false",
      "the fixed email input is still marked aria-invalid",
    );
  });

  await step("preview-page-1", async () => {
    await t("preview-button").click();
    await t("screen-preview").waitFor();
    await t("preview-image").waitFor();
    await previewShows(1);
    check(await t("preview-prev").isDisabled(), "the first page has an enabled ‹ button");
  });

  await step("preview-page-2", async () => {
    await t("preview-next").click();
    await previewShows(2);
    const label = (await t("preview-page").textContent()) || "";
    check(label.includes("2 of 2"), `unexpected page label ${JSON.stringify(label)}`);
  });

  await step("print-options", async () => {
    await t("to-print").click();
    await t("screen-print").waitFor();
    await t("print-button").waitFor();
    // The stepper starts at the draft's quantity (100 cards); + and − move it by one.
    const copies = async () => Number(((await t("copies").textContent()) || "").trim());
    const start = await copies();
    check(start === 100, `the copies stepper starts at ${start}, not at the draft's quantity 100`);
    await printLayoutShows(100, "800x480");
    await t("copies-plus").click();
    check((await copies()) === start + 1, "+ did not add a copy");
    // The layout is planned again for 101 cards, then for 100 once − takes the card away.
    await printLayoutShows(101, "800x480 after +");
    await t("copies-minus").click();
    check((await copies()) === start, "− did not take the copy away");
    await printLayoutShows(100, "800x480 after −");
  });

  await step("print-options-1024x600", async () => {
    // The same screen opened on the larger panel: Back to the preview, then Print options again.
    await page.setViewportSize({ width: 1024, height: 600 });
    await t("back").click();
    await t("screen-preview").waitFor();
    await t("to-print").click();
    await t("screen-print").waitFor();
    await t("print-button").waitFor();
    await printLayoutShows(100, "1024x600");
  });

  await step("print-options-800x480-again", async () => {
    await page.setViewportSize({ width: 800, height: 480 });
    await printLayoutShows(100, "800x480 again");
  });

  await step("job", async () => {
    await t("print-button").click();
    await t("screen-job").waitFor();
    await t("job-state").waitFor();
    log(`job state: ${await t("job-state").getAttribute("data-state")}`);
  });

  await step("job-completed", jobCompletes);

  await step("done", async () => {
    await t("screen-done").waitFor();
    await t("done").waitFor();
    await doneShowsLayout(100, "done");
  });

  const before = calls.filter((c) => c.auth).map((c) => c.auth);
  check(before.length > 0, "no grpc-web call carried a session token");
  const oldToken = before[before.length - 1];
  const callsBeforeExit = calls.length;

  await step("fresh-start", async () => {
    await t("exit").click();
    await t("screen-home").waitFor();
    await t(`category-${CATEGORY}`).waitFor();
    check((await t("user-name").count()) === 0, "a user is still shown after exit");
    const after = calls.slice(callsBeforeExit);
    const paths = after.map((c) => c.path.split("/").pop());
    check(paths.includes("CloseSession"), `exit did not close the session (calls: ${paths.join(", ")})`);
    check(paths.includes("StartSession"), `exit did not start a new session (calls: ${paths.join(", ")})`);
    const list = after.find((c) => c.path.endsWith("/ListCategories"));
    check(list, `the fresh start did not list the categories again (calls: ${paths.join(", ")})`);
    check(list.auth && list.auth !== oldToken, "the fresh start reuses the old session token");
  });
}

/** Waits until the bar's title reads `title` (screens of one kind share their test id). */
const titled = (title) =>
  page.waitForFunction((want) => document.querySelector('[data-testid="screen-title"]')?.textContent === want, title, {
    timeout: STEP,
  });

/** The calls' method names from `from` on. */
const callNames = (from) => calls.slice(from).map((c) => c.path.split("/").pop());

/** A fresh launch of the weblet, as the printer makes it: a new page load, with the device user's
 * assertion in the fragment when `assertion` is given. */
async function launchWeblet(assertion) {
  // Leaving the page ends its session (pagehide); a fragment-only change would not reload it.
  await page.goto("about:blank");
  const url = assertion ? `${opts.url}#device-user-assertion=${assertion}` : opts.url;
  const response = await page.goto(url, { waitUntil: "load" });
  check(response?.ok(), `GET ${opts.url} answered ${response?.status()}`);
}

/** The single sign-on walk. */
async function ssoWalk() {
  const name = opts["display-name"];
  await step("no-device-user", async () => {
    await launchWeblet("");
    await t("screen-home").waitFor();
    await t("login-open").click();
    await t("screen-login").waitFor();
    check((await t("login-remember").count()) === 0, "'remember me' is offered without a device user");
  });

  await step("device-user-login", async () => {
    await launchWeblet(opts.assertion);
    await t("screen-home").waitFor();
    check(!page.url().includes("device-user-assertion"), `the assertion stayed in the address: ${page.url()}`);
    const history = await page.evaluate(() => history.length);
    log(`address after launch: ${page.url()} (history length ${history})`);
    await t("login-open").click();
    await t("screen-login").waitFor();
    await t("login-remember").waitFor();
    await t("login-username").fill(opts.user);
    await t("login-password").fill(opts.password);
    await t("login-remember").check();
  });

  await step("remembered", async () => {
    const from = calls.length;
    await t("login-submit").click();
    await t("screen-home").waitFor();
    await page.waitForFunction(
      (want) => document.querySelector('[data-testid="user-name"]')?.textContent?.includes(want),
      name,
      {
        timeout: STEP,
      },
    );
    check(callNames(from).includes("Login"), `logging in called ${callNames(from).join(", ")}`);
    const notice = (await t("notice").textContent()) || "";
    check(/remembers you/.test(notice), `the notice does not say the printer remembers the person: ${notice}`);
  });

  await step("exit", async () => {
    await t("exit").click();
    await t("screen-home").waitFor();
    check((await t("user-name").count()) === 0, "a user is still shown after exit");
  });

  await step("signed-in-without-typing", async () => {
    const from = calls.length;
    await launchWeblet(opts.assertion);
    await t("screen-home").waitFor();
    await page.waitForFunction(
      (want) => document.querySelector('[data-testid="user-name"]')?.textContent?.includes(want),
      name,
      {
        timeout: STEP,
      },
    );
    const names = callNames(from);
    check(
      names.includes("GetVaultKey") && names.includes("SilentLogin") && !names.includes("Login"),
      `the relaunch should sign in through GetVaultKey and SilentLogin only: ${names.join(", ")}`,
    );
    check((await t("screen-login").count()) === 0, "the login screen was shown");
    log(`signed in as ${name} with nothing typed (${names.join(", ")})`);
  });

  await step("forget", async () => {
    await t("user-name").click();
    await t("screen-account").waitFor();
    await t("forget-me").click();
    await page.waitForFunction(
      () => /forgotten you/.test(document.querySelector('[data-testid="notice"]')?.textContent || ""),
      null,
      {
        timeout: STEP,
      },
    );
  });

  await step("not-remembered", async () => {
    await t("exit").click();
    await t("screen-home").waitFor();
    const from = calls.length;
    await launchWeblet(opts.assertion);
    await t("screen-home").waitFor();
    await t("login-open").waitFor();
    const names = callNames(from);
    check(!names.includes("SilentLogin"), `a forgotten person was signed in: ${names.join(", ")}`);
    await t("login-open").click();
    await t("screen-login").waitFor();
    await t("login-remember").waitFor();
    await t("login-username").waitFor();
  });
}

/** The uStore walk: against the uStore test double, browse anonymously, log in, customize with
 * uStore's own validation and a conditional field, preview, print, exit. */
async function ustoreWalk() {
  const u = USTORE;
  /** Home → Stationery → Business cards → the business card's product screen. */
  const toBusinessCard = async () => {
    await t(`category-${u.stationery}`).click();
    await titled(u.stationeryTitle);
    await t(`subcategory-${u.businessCards}`).click();
    await titled(u.businessCardsTitle);
    await t(`product-${u.card}`).click();
    await t("screen-product").waitFor();
    await titled(u.cardName);
  };

  await step("ustore-home", async () => {
    await openHome(u.stationery);
    const title = (await t(`category-${u.stationery}`).locator(".tile-title").textContent()) || "";
    check(title === u.stationeryTitle, `the Stationery tile reads ${JSON.stringify(title)}`);
    check((await t(`category-${u.trade}`).count()) === 0, "the trade-only category shows before anyone logged in");
    await t("login-open").waitFor();
  });

  await step("ustore-subcategory", async () => {
    await t(`category-${u.stationery}`).click();
    await titled(u.stationeryTitle);
    await t(`subcategory-${u.businessCards}`).click();
    await titled(u.businessCardsTitle);
    await t(`product-${u.card}`).waitFor();
  });

  await step("ustore-product", async () => {
    await t(`product-${u.card}`).click();
    await t("screen-product").waitFor();
    await t("customize").waitFor();
    const name = (await t("product-name").textContent()) || "";
    check(name === u.cardName, `unexpected product name ${JSON.stringify(name)}`);
    const trim = (await t("product-trim").textContent()) || "";
    check(trim === u.cardTrim, `the trim size reads ${JSON.stringify(trim)}, not ${u.cardTrim}`);
    const description = (await t("product-description").textContent()) || "";
    check(description && !description.includes("<"), `uStore's HTML description shows as markup: ${description}`);
  });

  await step("ustore-login", async () => {
    // Logging in is on the home screen's bar: Back to it the way the person came.
    for (const title of [u.businessCardsTitle, u.stationeryTitle]) {
      await t("back").click();
      await titled(title);
    }
    await t("back").click();
    await t("screen-home").waitFor();
    await t("login-open").click();
    await t("screen-login").waitFor();
    check((await t("login-remember").count()) === 0, "'remember me' is offered without a device user");
    await t("login-username").fill(opts.user);
    await t("login-password").fill(opts.password);
  });

  await step("ustore-logged-in", async () => {
    const from = calls.length;
    await t("login-submit").click();
    await t("screen-home").waitFor();
    await page.waitForFunction(
      (want) => document.querySelector('[data-testid="user-name"]')?.textContent?.includes(want),
      opts["display-name"],
      { timeout: STEP },
    );
    check(callNames(from).includes("Login"), `logging in called ${callNames(from).join(", ")}`);
    // The account's own catalog: uStore shows this account the trade-only category.
    await t(`category-${u.trade}`).waitFor();
    log(`logged in as ${opts["display-name"]}; the trade-only category shows`);
  });

  await step("ustore-product-again", async () => {
    await toBusinessCard();
    await t("customize").waitFor();
  });

  await step("ustore-form", async () => {
    await t("customize").click();
    await t("screen-form").waitFor();
    await t("field-Name").waitFor();
    await t("field-ShowPhone").waitFor();
    check(await t("field-wrap-Phone").isHidden(), "the Phone field shows while ShowPhone is No");
  });

  await step("ustore-name-refused", async () => {
    // uStore's own rule (not one the weblet or the core knows): its message on its field.
    await t("field-Name").fill(u.refusedName);
    await t("field-Name").blur();
    const error = t("field-error-Name");
    await error.waitFor({ state: "visible" });
    const text = ((await error.textContent()) || "").trim();
    check(/reserved/.test(text), `the Name error is not uStore's: ${JSON.stringify(text)}`);
    log(`uStore's Name error: ${JSON.stringify(text)}`);
    check(
      (await t("field-Name").getAttribute("aria-invalid")) === "true",
      "the refused Name input is not marked aria-invalid",
    );
  });

  await step("ustore-name-fixed", async () => {
    await t("field-Name").fill(u.name);
    await t("field-Name").blur();
    await t("field-error-Name").waitFor({ state: "hidden" });
    check((await t("field-Name").getAttribute("aria-invalid")) === "false", "the fixed Name is still aria-invalid");
    await t("field-JobTitle").fill(u.jobTitle);
    await t("field-JobTitle").blur();
  });

  await step("ustore-conditional-phone", async () => {
    await t("choice-ShowPhone-Yes").click();
    await t("field-wrap-Phone").waitFor({ state: "visible" });
    await t("field-Phone").fill(u.phone);
    await t("field-Phone").blur();
    await page.waitForFunction(
      () =>
        document.querySelectorAll(".field.invalid").length === 0 &&
        document.querySelector('[data-testid="save-status"]')?.textContent === "All fields OK",
      null,
      { timeout: STEP },
    );
    await t("field-Phone").scrollIntoViewIfNeeded();
  });

  await step("ustore-preview", async () => {
    await t("preview-button").click();
    await t("screen-preview").waitFor();
    await t("preview-image").waitFor();
    await previewShows(1);
  });

  await step("ustore-print-options", async () => {
    await t("to-print").click();
    await t("screen-print").waitFor();
    await t("print-button").waitFor();
    // uStore's card is laid out on the printer's sheets like the sample shop's.
    await printLayoutShows(100, "ustore 800x480");
  });

  await step("ustore-job", async () => {
    await t("print-button").click();
    await t("screen-job").waitFor();
    await t("job-state").waitFor();
    log(`job state: ${await t("job-state").getAttribute("data-state")}`);
  });

  await step("ustore-job-completed", jobCompletes);

  await step("ustore-done", async () => {
    await t("screen-done").waitFor();
    await t("done").waitFor();
    await doneShowsLayout(100, "ustore done");
  });

  await step("ustore-fresh-start", async () => {
    const from = calls.length;
    await t("exit").click();
    await t("screen-home").waitFor();
    await t(`category-${u.stationery}`).waitFor();
    check((await t("user-name").count()) === 0, "a user is still shown after exit");
    check((await t(`category-${u.trade}`).count()) === 0, "the trade-only category outlived the exit");
    const names = callNames(from);
    check(
      names.includes("CloseSession") && names.includes("StartSession"),
      `exit did not close and start a session (calls: ${names.join(", ")})`,
    );
  });
}

try {
  const caPem = (() => {
    try {
      return readFileSync(caFile, "utf8");
    } catch (e) {
      throw new Failure(`cannot read the gateway's CA ${caFile}: ${e.message}`);
    }
  })();
  caSubject = new X509Certificate(caPem).subject;
  // An empty HOME, so nothing but the CA added below can make the browser trust the gateway.
  mkdirSync(home, { recursive: true });
  check(readdirSync(home).length === 0, `the browser's HOME ${home} is not empty`);
  mkdirSync(join(home, ".pki", "nssdb"), { recursive: true, mode: 0o700 });
  certutil("-N", "--empty-password");

  log("step: untrusted");
  untrusted = await launch();
  log(`chromium ${untrusted.version()}, HOME ${home}`);
  const refusal = await (async () => {
    const probe = await (await untrusted.newContext()).newPage();
    try {
      const response = await probe.goto(opts.url, { waitUntil: "commit", timeout: STEP });
      return `a page (HTTP ${response?.status()})`;
    } catch (e) {
      return e.message.split("\n")[0];
    }
  })();
  await untrusted.close();
  untrusted = undefined;
  check(
    refusal.includes("net::ERR_CERT_AUTHORITY_INVALID"),
    `without the CA the browser should refuse the gateway with net::ERR_CERT_AUTHORITY_INVALID, got: ${refusal}`,
  );
  log(`refused without the CA: net::ERR_CERT_AUTHORITY_INVALID`);

  certutil("-A", "-n", CA_NICKNAME, "-t", "C,,", "-i", caFile);
  const listed = certutil("-L");
  check(listed.includes(CA_NICKNAME), `the NSS database does not list ${CA_NICKNAME}:\n${listed}`);
  log(`trusted ${caSubject.replace(/\n/g, ", ")} in ${nssdb} as ${CA_NICKNAME}`);

  browser = await launch();
  log(`chromium ${browser.version()}`);
  context = await browser.newContext({ viewport: { width: 800, height: 480 }, hasTouch: true });
  context.setDefaultTimeout(STEP);
  // CSP violations also reach the console, but report them explicitly, with what was blocked.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "(inline)"}`);
    });
  });
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const where = m.location().url;
    problems.push(`console error: ${m.text()}${where ? ` (${where})` : ""}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("crash", () => problems.push("the page crashed"));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  page.on("requestfailed", (r) => {
    // A screen change aborts its calls (the job watch stream, for one): that is by design.
    const why = r.failure()?.errorText || "";
    if (!why.includes("ERR_ABORTED")) problems.push(`request failed: ${r.method()} ${r.url()}: ${why}`);
  });
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (/^\/podconnect\.v1\.\w+\/\w+$/.test(path)) calls.push({ path, auth: r.headers().authorization || "" });
  });

  if (opts.scenario === "sso") await ssoWalk();
  else if (opts.scenario === "ustore") await ustoreWalk();
  else await printWalk();

  log("step: nothing kept");
  check(!(await page.evaluate(() => document.cookie)), "document.cookie is not empty");
  const cookies = await context.cookies();
  check(cookies.length === 0, `the context holds cookies: ${cookies.map((c) => c.name).join(", ")}`);
  const kept = await page.evaluate(async () => ({
    local: localStorage.length,
    session: sessionStorage.length,
    idb: indexedDB.databases ? (await indexedDB.databases()).map((d) => d.name) : [],
    caches: "caches" in window ? await caches.keys() : [],
    workers: navigator.serviceWorker ? (await navigator.serviceWorker.getRegistrations()).length : 0,
  }));
  check(kept.local === 0 && kept.session === 0, `web storage is not empty: ${JSON.stringify(kept)}`);
  check(kept.idb.length === 0, `IndexedDB databases exist: ${kept.idb.join(", ")}`);
  check(kept.caches.length === 0, `Cache Storage is not empty: ${kept.caches.join(", ")}`);
  check(kept.workers === 0, "a service worker is registered");
  const storage = await context.storageState();
  check(
    storage.cookies.length === 0 && storage.origins.every((o) => o.localStorage.length === 0),
    `the context's storage state is not empty: ${JSON.stringify(storage)}`,
  );
  assertNoProblems("the end");
  log(`PASSED: ${shotNo} screenshots in ${out}, ${calls.length} grpc-web calls`);
} catch (e) {
  const message = e instanceof Failure ? e.message : e?.stack ? e.stack : String(e);
  console.error(`flow: FAILED: ${message}`);
  if (problems.length && !reported) console.error(`flow: the browser reported:\n  ${problems.join("\n  ")}`);
  if (page) {
    try {
      console.error(`flow: screenshot of the failure: ${await shot("failure")}`);
      // biome-ignore lint/performance/useDomNodeTextContent: what the person saw, as laid out
      const text = await page.evaluate(() => document.body.innerText);
      console.error(`flow: the page said:\n${text.slice(0, 2000)}`);
    } catch {
      // the page is gone: nothing more to show
    }
  }
  await cleanUp();
  process.exit(1);
}
await cleanUp();
