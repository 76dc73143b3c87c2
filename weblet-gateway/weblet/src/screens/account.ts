// The signed-in person's account (opened from their name in the top bar): Log out, and, when a
// device user is signed in at the printer, "Forget me on this printer" (their saved sign-in).
import { SHORT, session, sso } from "../api";
import { button, clear, h } from "../dom";
import { nav } from "../routes";
import { alive, failed, notify, type Screen, screen } from "../screen";
import { accountChanged, app } from "../state";
import { describe } from "../status";
import { banner } from "../widgets";

export function accountScreen(): void {
  const user = app.session.user;
  if (!user) {
    // Logged out meanwhile (Back to an old account screen): nothing to show.
    nav.reset({ name: "home" });
    return;
  }
  const s = screen({ title: "Your account", testid: "screen-account", back: true });
  const msg = h("div", { testid: "account-message" });
  const logout: HTMLButtonElement = button("Log out", () => void run(logout, "Logging out…", () => logOut(s, msg)), {
    kind: "primary",
    testid: "logout",
  });
  s.body.appendChild(
    h(
      "div",
      { class: "account" },
      msg,
      h(
        "section",
        { class: "account-card" },
        h("h2", { class: "account-name", testid: "account-name", text: user }),
        h("p", {
          class: "muted",
          text: "Prices and products are those of your print shop account. Log out to go on without it.",
        }),
        logout,
      ),
      app.session.deviceUser ? forgetCard(s, msg) : null,
    ),
  );
}

/** Explains what this printer keeps for the device user, with the button that removes it. */
function forgetCard(s: Screen, msg: HTMLElement): HTMLElement {
  return h(
    "section",
    { class: "account-card" },
    h("p", {
      testid: "sso-state",
      text: app.session.ssoStored
        ? "This printer remembers you: when you sign in at it, you are logged in here without typing."
        : "This printer does not remember you. To be remembered, log in with “Remember me on this printer”.",
    }),
    forgetButton(s, msg),
  );
}

/** "Forget me on this printer": deletes the device user's saved sign-in; the result is confirmed
 * with a notice and the screen is drawn again. Used here and on the login screen. */
export function forgetButton(s: Screen, msg: HTMLElement): HTMLButtonElement {
  const b: HTMLButtonElement = button(
    "Forget me on this printer",
    () =>
      void run(b, "Forgetting…", async () => {
        clear(msg);
        try {
          const res = await sso.forget({}, { ...SHORT, signal: s.signal });
          if (!alive(s)) return;
          app.session.ssoStored = false;
          notify(
            res.deleted
              ? "This printer has forgotten you. Next time, you log in yourself."
              : "Nothing was saved for you on this printer.",
          );
          nav.reload();
        } catch (e) {
          if (!failed(s, e)) return;
          const p = describe(e, "forget");
          msg.appendChild(banner("error", [h("strong", { text: `${p.title}. ` }), p.message], "forget-error"));
        }
      }),
    { kind: "danger", testid: "forget-me" },
  );
  return b;
}

async function logOut(s: Screen, msg: HTMLElement): Promise<void> {
  clear(msg);
  try {
    await session.logout({}, { ...SHORT, signal: s.signal });
    if (!alive(s)) return;
    accountChanged("");
    notify("You are logged out. You can go on without an account.");
    nav.reset({ name: "home" });
  } catch (e) {
    if (!failed(s, e)) return;
    const p = describe(e, "logout");
    msg.appendChild(banner("error", [h("strong", { text: `${p.title}. ` }), p.message], "logout-error"));
  }
}

/** Runs an action with its button disabled and saying what is happening, then restores it. */
async function run(b: HTMLButtonElement, busy: string, action: () => Promise<void>): Promise<void> {
  if (b.disabled) return;
  const label = b.textContent;
  b.disabled = true;
  b.textContent = busy;
  try {
    await action();
  } finally {
    b.disabled = false;
    b.textContent = label;
  }
}
