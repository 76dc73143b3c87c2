// The session's screens: starting it (launch), closing it (Exit, Finish, Start again) and the
// screen shown when it ended on its own.
import { closeSession, SHORT, session, setToken } from "../api";
import { spinner } from "../dom";
import { nav } from "../routes";
import { alive, exit, screen, showProblem } from "../screen";
import { app, forgetSession } from "../state";
import { describe } from "../status";
import { problemBlock } from "../widgets";

export async function startScreen(): Promise<void> {
  const s = screen({ title: app.title, testid: "screen-start" });
  s.body.appendChild(spinner("Starting the print shop…"));
  try {
    const res = await session.startSession(
      { deviceId: app.deviceId, locale: app.locale },
      { ...SHORT, signal: s.signal },
    );
    if (!alive(s)) return;
    setToken(res.sessionToken);
    app.session.ssoAvailable = res.ssoAvailable;
    nav.reset({ name: "home" });
  } catch (e) {
    showProblem(s, e);
  }
}

/** Closes the session, forgets everything and starts afresh. */
export async function exitScreen(): Promise<void> {
  const s = screen({ title: app.title, testid: "screen-exit" });
  s.body.appendChild(spinner("Closing your session…", "closing"));
  await closeSession();
  forgetSession();
  if (alive(s)) nav.reset({ name: "start" });
}

/** The session is gone (expired): the only way on is a fresh start. */
export function endedScreen(err: unknown): void {
  const s = screen({ title: app.title, testid: "screen-ended" });
  s.body.appendChild(problemBlock(describe(err), exit, exit));
}
