// Unit test of the words a status becomes (src/status.ts, bundled on the fly by esbuild) for single
// sign-on and the login: what the person reads, and the kind a screen acts on.
// Usage: node --test tests/ (npm test)
import assert from "node:assert/strict";
import { test } from "node:test";
import { importTs } from "./bundle.mjs";

const { describe, waitSeconds, waitWords, Code, ConnectError } = await importTs(
  `export * from "./src/status.ts"; export { Code, ConnectError } from "@connectrpc/connect";`,
  "node",
);

const status = (code, message = "", details = []) => new ConnectError(message, code, undefined, details);

/** google.rpc.RetryInfo { retry_delay: Duration { seconds } } as the wire carries it. */
function retryInfo(seconds) {
  const duration = [0x08, seconds]; // field 1 varint (seconds < 128)
  return { type: "google.rpc.RetryInfo", value: new Uint8Array([0x0a, duration.length, ...duration]) };
}

test("a saved sign-in that can no longer be used asks the person to log in again, in plain words", () => {
  const p = describe(status(Code.FailedPrecondition, "stored credentials refused"), "silent-login");
  assert.equal(p.kind, "needs-fixes");
  assert.match(p.message, /could not be used any more/);
  assert.match(p.message, /password changed/);
  assert.doesNotMatch(p.message, /stored credentials refused/, "the server's words are not shown");
});

test("nothing saved is not-found; a failing service only means 'not signed in automatically'", () => {
  assert.equal(describe(status(Code.NotFound), "silent-login").kind, "not-found");
  assert.equal(describe(status(Code.NotFound), "vault-key").kind, "not-found");
  for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.InvalidArgument, Code.Unimplemented]) {
    const p = describe(status(code, "vault down"), "silent-login");
    assert.match(p.title, /not signed in automatically/, `for code ${code}`);
    assert.equal(p.sessionEnded, false);
  }
  assert.equal(describe(status(Code.FailedPrecondition), "vault-key").kind, "needs-fixes");
  assert.match(describe(status(Code.FailedPrecondition), "vault-key").title, /not signed in automatically/);
});

test("a lost session stays a lost session during single sign-on, logout and forget", () => {
  for (const situation of ["vault-key", "silent-login", "logout", "forget", "login"]) {
    const p = describe(status(Code.Unauthenticated), situation);
    assert.equal(p.sessionEnded, true, situation);
  }
});

test("at launch, a refused device-user assertion is not a lost session", () => {
  const p = describe(status(Code.Unauthenticated, "assertion expired"), "start");
  assert.equal(p.kind, "denied");
  assert.equal(p.sessionEnded, false);
  assert.match(p.title, /could not be confirmed/);
  assert.equal(describe(status(Code.Unavailable), "start").kind, "unreachable");
});

test("a wrong password gets one message that does not say which of the two was wrong", () => {
  const p = describe(status(Code.PermissionDenied, "unknown user ana@example.com"), "login");
  assert.equal(p.message, "The user name or password is not right. Please try again.");
});

test("too many attempts says how long to wait, from RetryInfo or from the message", () => {
  assert.match(describe(status(Code.ResourceExhausted, "too many", [retryInfo(45)]), "login").message, /45 seconds/);
  assert.match(
    describe(status(Code.ResourceExhausted, "too many failed logins; retry in about 300 s"), "login").message,
    /about 5 minutes/,
  );
  assert.match(describe(status(Code.ResourceExhausted, ""), "login").message, /a few minutes/);
  assert.equal(describe(status(Code.ResourceExhausted), "login").title, "Too many attempts");
});

test("wait times are read only when believable", () => {
  assert.equal(waitSeconds(status(Code.ResourceExhausted, "retry in about 90 s")), 90);
  assert.equal(waitSeconds(status(Code.ResourceExhausted, "try again in 2 minutes")), 120);
  assert.equal(waitSeconds(status(Code.ResourceExhausted, "retry in 0 s")), undefined);
  assert.equal(waitSeconds(status(Code.ResourceExhausted, "retry in 999999 hours")), undefined);
  assert.equal(
    waitSeconds(
      status(Code.ResourceExhausted, "busy", [{ type: "google.rpc.RetryInfo", value: new Uint8Array([0x0a, 0x05]) }]),
    ),
    undefined,
    "a truncated detail says nothing",
  );
  assert.equal(waitWords(1), "1 second");
  assert.equal(waitWords(58.2), "59 seconds");
  assert.equal(waitWords(59.2), "about a minute");
  assert.equal(waitWords(61), "about 2 minutes");
  assert.equal(waitWords(3600), "about an hour");
});

test("a value the service refused at login is named as such", () => {
  const p = describe(status(Code.InvalidArgument, "username is longer than 256 characters"), "login");
  assert.equal(p.title, "Check what you typed");
  assert.match(p.message, /longer than 256/);
});

test("forget without a device user says there is nothing to forget", () => {
  assert.equal(describe(status(Code.FailedPrecondition), "forget").title, "Nothing to forget");
});

test("a product larger than every loaded sheet, when planning, offers fitting it to the sheet", () => {
  const p = describe(
    status(
      Code.FailedPrecondition,
      'the product (297 × 420 mm) is larger than every sheet this printer holds (A4, US Letter); choose "fit to sheet" to scale it down, or ask staff to load larger paper',
    ),
    "plan",
  );
  assert.equal(p.kind, "too-large");
  assert.match(p.message, /^The product \(297 × 420 mm\) is larger than every sheet .*larger paper\.$/);
  assert.equal(describe(status(Code.Unavailable, "printer offline"), "plan").kind, "unreachable");
});
