// Unit test of the weblet's back stack (src/nav.ts, bundled on the fly by esbuild): Back returns to
// the screen the person came from, with its category and scroll position, also after the detours
// the job screen and the print screen take (Try again, Back to the form).
// Usage: node --test tests/ (npm test)
import assert from "node:assert/strict";
import { test } from "node:test";
import { importTs } from "./bundle.mjs";

const { Navigator } = await importTs('export * from "./src/nav.ts";');

/** A navigator that records what it shows; `scroll` is what the screen on show is scrolled to. */
function app() {
  const shown = [];
  const state = { scroll: 0 };
  const nav = new Navigator();
  nav.attach(
    (route, entry) => shown.push({ ...route, scrollTop: entry.scrollTop }),
    (entry) => {
      entry.scrollTop = state.scroll;
    },
  );
  return { nav, shown, state, top: () => shown[shown.length - 1] };
}

const home = { name: "home" };
const marketing = { name: "category", category: "marketing" };
const flyers = { name: "category", category: "flyers" };
const product = { name: "product", productId: "a4-flyer" };

test("back from a product returns to the subcategory it was opened from, scrolled as it was left", () => {
  const { nav, state, top } = app();
  nav.reset(home);
  nav.go(marketing);
  nav.go(flyers);
  state.scroll = 240;
  nav.go(product);
  state.scroll = 0;
  assert.equal(nav.back(), true);
  assert.deepEqual(top(), { ...flyers, scrollTop: 240 });
  nav.back();
  assert.deepEqual(top(), { ...marketing, scrollTop: 0 });
  nav.back();
  assert.deepEqual(top(), { ...home, scrollTop: 0 });
  assert.equal(nav.back(), false, "back at the bottom does nothing");
  assert.deepEqual(nav.routes(), [home]);
});

test("Try again after a failed job returns to the print options with the whole way back intact", () => {
  const { nav, top } = app();
  nav.reset(home);
  for (const r of [flyers, product, { name: "form" }, { name: "preview" }, { name: "print" }, { name: "job" }]) {
    nav.go(r);
  }
  assert.equal(
    nav.backTo((r) => r.name === "print"),
    true,
  );
  assert.equal(top().name, "print");
  for (const want of ["preview", "form", "product", "category"]) {
    nav.back();
    assert.equal(top().name, want);
  }
  assert.deepEqual(nav.routes(), [home, flyers]);
});

test("back to a screen that is not on the stack changes nothing", () => {
  const { nav, shown } = app();
  nav.reset(home);
  nav.go(product);
  const before = shown.length;
  assert.equal(
    nav.backTo((r) => r.name === "form"),
    false,
  );
  assert.equal(shown.length, before);
  assert.deepEqual(nav.routes(), [home, product]);
});

test("reset forgets the way back; replace swaps the screen on top; reload shows it again", () => {
  const { nav, shown, top } = app();
  nav.reset(home);
  nav.go(flyers);
  nav.go({ name: "job" });
  nav.replace({ name: "done" });
  assert.deepEqual(nav.routes(), [home, flyers, { name: "done" }]);
  nav.reload();
  assert.equal(shown.filter((r) => r.name === "done").length, 2);
  nav.reset(home);
  assert.deepEqual(nav.routes(), [home]);
  assert.equal(top().name, "home");
});

test("resetTo shows only the screen on top, and Back returns to the one stacked under it", () => {
  const { nav, shown, top } = app();
  nav.reset(flyers);
  const before = shown.length;
  nav.resetTo([home, { name: "login" }]);
  assert.equal(shown.length, before + 1, "only the login screen is drawn, not home under it");
  assert.equal(top().name, "login");
  assert.equal(nav.back(), true);
  assert.deepEqual(top(), { ...home, scrollTop: 0 });
  assert.equal(nav.back(), false, "flyers from before the reset is gone");
  nav.resetTo([]);
  assert.deepEqual(nav.routes(), [home], "an empty list changes nothing");
});
