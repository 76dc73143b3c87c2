// The one place a call's status (gRPC code and message) becomes words for the person at the
// printer, and the one place the weblet makes a status of its own. Screens act on a Problem's
// kind, never on codes.
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
  /** The draft is not ready for this step: some fields need fixing first. */
  | "needs-fixes"
  /** The printer does not offer this (e.g. logging in). */
  | "not-offered"
  /** Wrong credentials or no permission. */
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

/** Where the call was made, when that changes the words. */
export type Situation = "call" | "login" | "finalize";

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

export function describe(err: unknown, situation: Situation = "call"): Problem {
  const e = ConnectError.from(err);
  const raw = e.rawMessage || "";
  const kind = kindOf(e.code);
  const problem = (title: string, message: string): Problem => ({
    title,
    message,
    kind,
    sessionEnded: kind === "session-ended",
  });
  if (situation === "login" && kind === "not-offered") {
    return problem(
      "Logging in is not available on this printer",
      `${sentence(raw)}You can still browse and print without an account.`,
    );
  }
  if (situation === "login" && kind === "denied") {
    return problem("That did not work", "The user name or password is not right. Please try again.");
  }
  if (situation === "finalize" && kind === "needs-fixes") {
    return problem("Some fields need attention", raw || "Please try again.");
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
