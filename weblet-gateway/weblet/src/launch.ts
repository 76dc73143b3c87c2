// What the printer hands the weblet when it launches it: the device id in the query
// (`?device=mfd-lobby`) and, when a person is signed in at the printer, their device-user assertion
// (a JWT) in the fragment (`#device-user-assertion=<JWT>`). A fragment never goes to a server, a
// log or a Referer; the weblet also takes it out of the address and the history at once and keeps
// it in memory only.

/** The fragment parameter that carries the device-user assertion. */
export const ASSERTION_PARAM = "device-user-assertion";

/** The contract's limit (StartSessionRequest.device_user_assertion). */
export const MAX_ASSERTION_CHARS = 16 * 1024;

const DEVICE_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** A compact JWS or JWE: three or five base64url parts separated by dots. */
const JWT_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}$/;

/** The printer's id from the query, or "weblet" when it has none or a malformed one. */
export function deviceFrom(search: string): string {
  const device = new URLSearchParams(search).get("device") || "";
  return DEVICE_RE.test(device) ? device : "weblet";
}

/** The fragment split into the assertion ("" when there is none or it is not a JWT within the
 * limit) and what is left of the fragment without it ("" or "#…"). `found` says whether the
 * parameter was there at all, usable or not: either way it comes out of the address. */
export function splitAssertion(hash: string): { assertion: string; rest: string; found: boolean } {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  if (!params.has(ASSERTION_PARAM)) return { assertion: "", rest: hash, found: false };
  const value = params.get(ASSERTION_PARAM) || "";
  params.delete(ASSERTION_PARAM);
  const left = params.toString();
  const usable = value.length <= MAX_ASSERTION_CHARS && JWT_RE.test(value);
  return { assertion: usable ? value : "", rest: left ? `#${left}` : "", found: true };
}

/** Takes the assertion out of the page's address (replacing the history entry, so Back and the
 * history never show it) and returns it; "" when the address carries none. */
export function takeAssertion(): string {
  const { assertion, rest, found } = splitAssertion(window.location.hash);
  if (found) {
    window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search + rest);
  }
  return assertion;
}
