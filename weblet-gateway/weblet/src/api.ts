// The weblet's connection to the core, through the weblet-gateway's grpc-web endpoints (same
// origin). The session token and the device-user assertion live in this module's variables only:
// the printer keeps nothing (no cookies, no browser storage).
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { CatalogService } from "./gen/podconnect/v1/catalog_pb";
import { CustomizationService } from "./gen/podconnect/v1/customization_pb";
import { PrintService } from "./gen/podconnect/v1/print_pb";
import { SessionService } from "./gen/podconnect/v1/session_pb";
import { SsoService } from "./gen/podconnect/v1/sso_pb";

let token = "";
/** The device-user assertion of this launch (see launch.ts), sent with StartSession only. */
let assertion = "";

export function setToken(t: string): void {
  token = t;
}

/** Sets (or with "" drops) the device-user assertion the next StartSession sends. */
export function setDeviceUserAssertion(a: string): void {
  assertion = a;
}

export function deviceUserAssertion(): string {
  return assertion;
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
export const sso: Client<typeof SsoService> = createClient(SsoService, transport);

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
/** Single sign-on at launch, while the person waits with nothing to do: on a timeout they go on
 * without an account rather than wait longer. */
export const QUICK = { timeoutMs: 10000 };
