// The one place a call's status (gRPC code and message) becomes words for the person at the
// printer, and the one place the weblet makes a status of its own. Screens act on a Problem's
// kind, never on codes.
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

/** What a screen can do about a problem. */
export type ProblemKind =
  /** The session is gone: only a fresh start helps. */
  | "session-ended"
  /** The print service did not answer: trying again later may help. */
  | "unreachable"
  | "busy"
  | "not-found"
  /** The service refused the values themselves (e.g. a value that is too long). */
  | "refused-values"
  /** The draft is not ready for this step: some fields need fixing first; at a silent login, the
   * saved sign-in can no longer be used (the person logs in again). */
  | "needs-fixes"
  /** The printer does not offer this (e.g. logging in). */
  | "not-offered"
  /** Planning a print: the product is larger than every sheet loaded (or the printer cannot take
   * the job as asked); printing it scaled down ("fit to sheet") may help. */
  | "too-large"
  /** Wrong credentials or no permission; at launch, a device user the server did not accept. */
  | "denied"
  | "other";

/** What went wrong, for the person at the printer. */
export interface Problem {
  title: string;
  message: string;
  kind: ProblemKind;
  /** The session is gone: only a fresh start helps. */
  sessionEnded: boolean;
}

/** Where the call was made, when that changes the words:
 * - `start`: StartSession with a device-user assertion;
 * - `vault-key`, `silent-login`: signing the device user in with nothing typed (SsoService);
 * - `login`, `logout`: SessionService.Login and Logout;
 * - `forget`: SsoService.Forget;
 * - `finalize`: the draft made final before printing;
 * - `plan`: PrintService.PlanJob (how the job would lay out on the sheets). */
export type Situation =
  | "call"
  | "login"
  | "finalize"
  | "plan"
  | "start"
  | "vault-key"
  | "silent-login"
  | "logout"
  | "forget";

function kindOf(code: Code): ProblemKind {
  switch (code) {
    case Code.Unauthenticated:
      return "session-ended";
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Unknown:
    case Code.Internal:
    case Code.Canceled:
      return "unreachable";
    case Code.ResourceExhausted:
      return "busy";
    case Code.NotFound:
      return "not-found";
    case Code.InvalidArgument:
      return "refused-values";
    case Code.FailedPrecondition:
      return "needs-fixes";
    case Code.Unimplemented:
      return "not-offered";
    case Code.PermissionDenied:
      return "denied";
    default:
      return "other";
  }
}

/** A message as a sentence followed by a space ("" stays ""). */
function sentence(m: string): string {
  const t = (m || "").trim();
  if (!t) return "";
  return /[.!?…]$/.test(t) ? `${t} ` : `${t}. `;
}

/** `m` with its first letter in upper case (the core's messages start in lower case). */
function capitalized(m: string): string {
  return m.charAt(0).toUpperCase() + m.slice(1);
}

/** The longest wait worth reading from a status (a day); anything longer is not believed. */
const MAX_WAIT_SECONDS = 86400;

/** How long the server asks the caller to wait before trying again, in seconds: from a
 * `google.rpc.RetryInfo` detail when the status carries one, else from its message ("retry in
 * about 300 s", "try again in 5 minutes"); undefined when it says neither. */
export function waitSeconds(err: unknown): number | undefined {
  const e = ConnectError.from(err);
  for (const d of e.details) {
    if (!("type" in d) || d.type !== "google.rpc.RetryInfo") continue;
    const s = retryDelay(d.value);
    if (s !== undefined) return s;
  }
  const m = /\b(?:in|after|wait)\s+(?:about\s+)?(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b/i.exec(
    e.rawMessage,
  );
  if (!m) return undefined;
  const unit = m[2].toLowerCase();
  const scale = unit.startsWith("h") ? 3600 : unit.startsWith("m") ? 60 : 1;
  return bounded(Number(m[1]) * scale);
}

/** RetryInfo's `retry_delay` (field 1, a Duration) in seconds; undefined when malformed. */
function retryDelay(bytes: Uint8Array): number | undefined {
  try {
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const [no, wire] = r.tag();
      if (no === 1 && wire === WireType.LengthDelimited) {
        const d = fromBinary(DurationSchema, r.bytes());
        return bounded(Number(d.seconds) + d.nanos / 1e9);
      }
      r.skip(wire, no);
    }
  } catch {
    // A detail that does not decode says nothing.
  }
  return undefined;
}

function bounded(s: number): number | undefined {
  return Number.isFinite(s) && s > 0 && s <= MAX_WAIT_SECONDS ? s : undefined;
}

/** A wait as a person says it: "40 seconds", "about 5 minutes", "about 2 hours". */
export function waitWords(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return s === 1 ? "1 second" : `${s} seconds`;
  if (s < 3600) {
    const m = Math.ceil(s / 60);
    return m === 1 ? "about a minute" : `about ${m} minutes`;
  }
  const h = Math.ceil(s / 3600);
  return h === 1 ? "about an hour" : `about ${h} hours`;
}

/** Words for the single sign-on that did not happen (the person goes on without an account). */
const NOT_SIGNED_IN = "You were not signed in automatically";
const LOG_IN_YOURSELF = "Log in yourself, or browse and print without an account.";

export function describe(err: unknown, situation: Situation = "call"): Problem {
  const e = ConnectError.from(err);
  const raw = e.rawMessage || "";
  const kind = kindOf(e.code);
  const problem = (title: string, message: string, k: ProblemKind = kind): Problem => ({
    title,
    message,
    kind: k,
    sessionEnded: k === "session-ended",
  });
  switch (situation) {
    case "start":
      // With an assertion, UNAUTHENTICATED means the assertion did not verify, not a lost session.
      if (kind === "session-ended") {
        return problem(
          "Your sign-in at the printer could not be confirmed",
          "Signing in without typing is off for now. You can still log in to the print shop yourself, or browse and print without an account.",
          "denied",
        );
      }
      break;
    case "vault-key":
    case "silent-login":
      if (situation === "silent-login" && kind === "needs-fixes") {
        return problem(
          "Please log in again",
          "Your saved sign-in could not be used any more — for example, your password changed. Log in again; you can choose to be remembered again.",
        );
      }
      if (kind === "not-found") {
        return problem("Nothing is saved for you on this printer", LOG_IN_YOURSELF);
      }
      if (kind !== "session-ended") return problem(NOT_SIGNED_IN, LOG_IN_YOURSELF);
      break;
    case "login":
      if (kind === "not-offered") {
        return problem(
          "Logging in is not available on this printer",
          `${sentence(raw)}You can still browse and print without an account.`,
        );
      }
      if (kind === "denied") {
        return problem("That did not work", "The user name or password is not right. Please try again.");
      }
      if (kind === "busy") {
        const wait = waitSeconds(e);
        return problem(
          "Too many attempts",
          wait !== undefined
            ? `Please wait ${waitWords(wait)} and try again.`
            : sentence(raw) || "Please wait a few minutes and try again.",
        );
      }
      if (kind === "refused-values") {
        return problem("Check what you typed", sentence(raw) || "The user name or the password is empty or too long.");
      }
      break;
    case "logout":
      if (kind !== "session-ended") {
        return problem(
          "You are still logged in",
          "We could not log you out just now. Try again, or tap Exit: that ends everything you did here.",
        );
      }
      break;
    case "forget":
      if (kind === "needs-fixes") {
        return problem(
          "Nothing to forget",
          "The printer did not say who is signed in at it, so nothing is saved for you here.",
        );
      }
      if (kind !== "session-ended") {
        return problem("This printer could not forget you just now", "Please try again in a moment.");
      }
      break;
    case "finalize":
      if (kind === "needs-fixes") return problem("Some fields need attention", raw || "Please try again.");
      break;
    case "plan":
      if (kind === "needs-fixes") {
        return problem(
          "It does not fit on the paper in this printer",
          capitalized(sentence(raw).trim()) || "The product is larger than the paper loaded.",
          "too-large",
        );
      }
      break;
    case "call":
      break;
  }
  switch (kind) {
    case "session-ended":
      return problem(
        "Your session has ended",
        "The app was idle for a while, so everything was cleared for your privacy. Start again to continue.",
      );
    case "unreachable":
      return problem(
        "The print service is not responding",
        "We could not reach the print shop just now. Check back in a moment and tap Try again." +
          (raw && e.code === Code.Unavailable && !/fetch|network/i.test(raw) ? ` (${raw})` : ""),
      );
    case "busy":
      return problem("Too busy right now", raw || "Please wait a moment and try again.");
    case "not-found":
      return problem("Not found", raw || "This item is no longer available.");
    default:
      return problem("Something went wrong", raw || "Please try again.");
  }
}

/** The weblet's own "not found" (an answer that lacks what it should carry). */
export function notFound(message: string): ConnectError {
  return new ConnectError(message, Code.NotFound);
}

/** The weblet's own "unreachable" (a stream that ended before its last word). */
export function unreachable(message: string): ConnectError {
  return new ConnectError(message, Code.Unavailable);
}
