// Unit test of what the weblet takes from its launch address (src/launch.ts, bundled on the fly by
// esbuild): the device id from the query, and the device-user assertion from the fragment, which
// always comes out of the address, usable or not.
// Usage: node --test tests/ (npm test)
import assert from "node:assert/strict";
import { test } from "node:test";
import { importTs } from "./bundle.mjs";

const { deviceFrom, splitAssertion, MAX_ASSERTION_CHARS } = await importTs('export * from "./src/launch.ts";');

const JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbmEifQ.c2lnbmF0dXJl";

test("the assertion comes out of the fragment, and nothing is left of it", () => {
  assert.deepEqual(splitAssertion(`#device-user-assertion=${JWT}`), { assertion: JWT, rest: "", found: true });
});

test("other fragment parameters stay where they were", () => {
  assert.deepEqual(splitAssertion(`#lang=de&device-user-assertion=${JWT}&x=1`), {
    assertion: JWT,
    rest: "#lang=de&x=1",
    found: true,
  });
});

test("an address without an assertion is left alone", () => {
  for (const hash of ["", "#", "#lang=de"]) {
    assert.deepEqual(splitAssertion(hash), { assertion: "", rest: hash, found: false });
  }
});

test("a value that is no JWT, or longer than the contract allows, is not used but still removed", () => {
  const tooLong = `${"a".repeat(MAX_ASSERTION_CHARS)}.b.c`;
  for (const value of ["", "not-a-jwt", "a.b", "a.b.c.d.e.f", "a.b.c<script>", "a%20b.c.d", tooLong]) {
    const got = splitAssertion(`#device-user-assertion=${encodeURIComponent(value)}`);
    assert.deepEqual(got, { assertion: "", rest: "", found: true }, `for ${JSON.stringify(value.slice(0, 20))}`);
  }
  const longest = `${"a".repeat(MAX_ASSERTION_CHARS - 4)}.b.c`;
  assert.equal(splitAssertion(`#device-user-assertion=${longest}`).assertion, longest, "exactly at the limit is used");
});

test("the device id comes from ?device= and falls back to 'weblet' when missing or malformed", () => {
  assert.equal(deviceFrom("?device=mfd-lobby"), "mfd-lobby");
  assert.equal(deviceFrom(""), "weblet");
  assert.equal(deviceFrom("?device=a/b"), "weblet");
  assert.equal(deviceFrom(`?device=${"x".repeat(65)}`), "weblet");
});
