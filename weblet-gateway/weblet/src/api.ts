// The weblet's connection to the core, through the weblet-gateway's grpc-web endpoints (same
// origin). The session token lives in this module's variable only: the printer keeps nothing
// (no cookies, no browser storage).
import { createClient, type Client, type Interceptor, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { SessionService } from "./gen/podconnect/v1/session_pb";
import { CatalogService } from "./gen/podconnect/v1/catalog_pb";
import { CustomizationService } from "./gen/podconnect/v1/customization_pb";
import { PrintService } from "./gen/podconnect/v1/print_pb";

let token = "";

export function setToken(t: string): void {
  token = t;
}

export function hasToken(): boolean {
  return token !== "";
}

const auth: Interceptor = (next) => async (req) => {
  if (token && !req.header.has("authorization")) req.header.set("authorization", "Bearer " + token);
  return next(req);
};

const baseUrl = window.location.origin;
const transport = createGrpcWebTransport({ baseUrl, interceptors: [auth] });

export const session: Client<typeof SessionService> = createClient(SessionService, transport);
export const catalog: Client<typeof CatalogService> = createClient(CatalogService, transport);
export const customization: Client<typeof CustomizationService> = createClient(
  CustomizationService,
  transport,
);
export const print: Client<typeof PrintService> = createClient(PrintService, transport);

// A transport whose requests survive the page going away (pagehide), for CloseSession.
const keepaliveTransport = createGrpcWebTransport({
  baseUrl,
  interceptors: [auth],
  fetch: (input, init) => fetch(input, Object.assign({}, init, { keepalive: true })),
});
const keepaliveSession = createClient(SessionService, keepaliveTransport);

/** Closes the session (best effort) and forgets the token. */
export async function closeSession(keepalive = false): Promise<void> {
  if (!token) return;
  const c = keepalive ? keepaliveSession : session;
  const headers = { authorization: "Bearer " + token };
  token = "";
  try {
    await c.closeSession({}, { timeoutMs: 4000, headers });
  } catch {
    // Best effort: the session expires on its own at its idle limit.
  }
}

/** Deadlines: ordinary calls vs. rendering and print-file calls (which may take seconds). */
export const SHORT = { timeoutMs: 20000 };
export const LONG = { timeoutMs: 70000 };

export { ConnectError, Code };

/** What went wrong, for the person at the printer. */
export interface Problem {
  title: string;
  message: string;
  /** The session is gone: only a fresh start helps. */
  sessionEnded: boolean;
  code: Code | undefined;
}

export function describe(err: unknown): Problem {
  const e = ConnectError.from(err);
  const raw = e.rawMessage || "";
  switch (e.code) {
    case Code.Unauthenticated:
      return {
        title: "Your session has ended",
        message: "The app was idle for a while, so everything was cleared for your privacy. Start again to continue.",
        sessionEnded: true,
        code: e.code,
      };
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Unknown:
    case Code.Internal:
    case Code.Canceled:
      return {
        title: "The print service is not responding",
        message:
          "We could not reach the print shop just now. Check back in a moment and tap Try again." +
          (raw && e.code === Code.Unavailable && !/fetch|network/i.test(raw) ? " (" + raw + ")" : ""),
        sessionEnded: false,
        code: e.code,
      };
    case Code.ResourceExhausted:
      return {
        title: "Too busy right now",
        message: raw || "Please wait a moment and try again.",
        sessionEnded: false,
        code: e.code,
      };
    case Code.NotFound:
      return {
        title: "Not found",
        message: raw || "This item is no longer available.",
        sessionEnded: false,
        code: e.code,
      };
    default:
      return {
        title: "Something went wrong",
        message: raw || "Please try again.",
        sessionEnded: false,
        code: e.code,
      };
  }
}
