// The weblet's connection to the core, through the weblet-gateway's grpc-web endpoints (same
// origin). The session token lives in this module's variable only: the printer keeps nothing
// (no cookies, no browser storage).
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { CatalogService } from "./gen/podconnect/v1/catalog_pb";
import { CustomizationService } from "./gen/podconnect/v1/customization_pb";
import { PrintService } from "./gen/podconnect/v1/print_pb";
import { SessionService } from "./gen/podconnect/v1/session_pb";

let token = "";

export function setToken(t: string): void {
  token = t;
}

const auth: Interceptor = (next) => async (req) => {
  if (token && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

const baseUrl = window.location.origin;
const transport = createGrpcWebTransport({ baseUrl, interceptors: [auth] });

export const session: Client<typeof SessionService> = createClient(SessionService, transport);
export const catalog: Client<typeof CatalogService> = createClient(CatalogService, transport);
export const customization: Client<typeof CustomizationService> = createClient(CustomizationService, transport);
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
  const headers = { authorization: `Bearer ${token}` };
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
