// The session's screens: starting it (launch, with single sign-on when the printer names a device
// user whose sign-in is saved), closing it (Exit, Finish, Start again) and the screen shown when it
// ended on its own.
import {
  closeSession,
  deviceUserAssertion,
  QUICK,
  SHORT,
  session,
  setDeviceUserAssertion,
  setToken,
  sso,
} from "../api";
import { clear, spinner } from "../dom";
import { nav } from "../routes";
import { alive, dismissNotice, exit, failed, notify, type Screen, screen, showProblem } from "../screen";
import { accountChanged, app, forgetSession } from "../state";
import { describe, type Problem } from "../status";
import { problemBlock } from "../widgets";

export async function startScreen(): Promise<void> {
  const s = screen({ title: app.title, testid: "screen-start" });
  s.body.appendChild(spinner("Starting the print shop…"));
  const assertion = deviceUserAssertion();
  try {
    const res = await session.startSession(
      { deviceId: app.deviceId, locale: app.locale, deviceUserAssertion: assertion },
      { ...SHORT, signal: s.signal },
    );
    if (!alive(s)) return;
    setToken(res.sessionToken);
    app.session.deviceUser = assertion !== "";
    app.session.ssoStored = res.ssoAvailable;
  } catch (e) {
    if (!alive(s)) return;
    const p = describe(e, assertion ? "start" : "call");
    if (assertion && p.kind === "denied") {
      // The printer's word for who is signed in did not verify (expired, say): this launch goes
      // on without a device user rather than not at all.
      setDeviceUserAssertion("");
      notify(`${p.title}. ${p.message}`, "warn");
      nav.reload();
      return;
    }
    showProblem(s, e);
    return;
  }
  if (app.session.ssoStored) await silentLogin(s);
  else nav.reset({ name: "home" });
}

/** Signs the device user in with their saved credentials, nothing typed. Whatever goes wrong, the
 * person lands somewhere useful: home (anonymous), or the login screen with the reason when the
 * saved sign-in can no longer be used; a lost session goes where it always goes. */
async function silentLogin(s: Screen): Promise<void> {
  clear(s.body);
  s.body.appendChild(spinner("Signing you in…", "signing-in"));
  let vaultKey: string;
  try {
    vaultKey = (await sso.getVaultKey({}, { ...QUICK, signal: s.signal })).vaultKey;
  } catch (e) {
    if (!failed(s, e)) return;
    notSignedIn(describe(e, "vault-key"));
    return;
  }
  if (!alive(s)) return;
  try {
    const res = await sso.silentLogin({ vaultKey }, { ...QUICK, signal: s.signal });
    if (!alive(s)) return;
    setToken(res.sessionToken);
    const name = res.displayName || "your account";
    accountChanged(name);
    notify(`Signed in as ${name}.`);
    nav.reset({ name: "home" });
  } catch (e) {
    if (!failed(s, e)) return;
    const p = describe(e, "silent-login");
    if (p.kind === "needs-fixes") {
      // The server deleted the unusable entry; the person logs in again (and may be remembered anew).
      app.session.ssoStored = false;
      nav.resetTo([{ name: "home" }, { name: "login", problem: p }]);
      return;
    }
    notSignedIn(p);
  }
}

/** Single sign-on did not happen: on to home without an account. Nothing saved (any more) needs no
 * word; anything else gets a brief one, so the person knows to log in themselves. */
function notSignedIn(p: Problem): void {
  if (p.kind === "not-found") app.session.ssoStored = false;
  else notify(`${p.title}. ${p.message}`, "warn");
  nav.reset({ name: "home" });
}

/** Closes the session, forgets everything (the device user included: a device user belongs to one
 * launch) and starts afresh; with `next`, for the device user of a new launch. */
export async function exitScreen(next = ""): Promise<void> {
  const s = screen({ title: app.title, testid: "screen-exit" });
  s.body.appendChild(spinner("Closing your session…", "closing"));
  dismissNotice();
  setDeviceUserAssertion("");
  await closeSession();
  // Only another exit can replace this screen, and that one forgets and starts afresh itself.
  if (!alive(s)) return;
  forgetSession();
  setDeviceUserAssertion(next);
  nav.reset({ name: "start" });
}

/** The session is gone (expired): the only way on is a fresh start. */
export function endedScreen(err: unknown): void {
  const s = screen({ title: app.title, testid: "screen-ended" });
  s.body.appendChild(problemBlock(describe(err), exit, exit));
}
