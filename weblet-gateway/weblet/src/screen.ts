// The screen frame every screen is drawn in: the top bar (Back, title, log-in or user name,
// Exit), a scrolling body and a footer, and the brief notices shown over it ("Signed in as …").
// Opening a screen ends the one before: its calls are aborted and its images freed; async work
// checks `alive` before it touches the DOM.
import { blobUrl, button, clear, h, revokeAll } from "./dom";
import { nav } from "./routes";
import { app } from "./state";
import { describe } from "./status";
import { problemBlock } from "./widgets";

export interface Screen {
  gen: number;
  body: HTMLElement;
  footer: HTMLElement;
  signal: AbortSignal;
  setTitle(t: string): void;
  /** A blob: URL for image bytes that lives as long as this screen. */
  image(data: Uint8Array, contentType: string): string;
}

export interface ScreenOpts {
  title: string;
  testid: string;
  /** A Back button (to the screen under this one). */
  back?: boolean;
  /** The home screen's bar: the user's name (opening their account), or Log in. */
  home?: boolean;
}

/** The screen on show: its number, the abort of its calls, its images, its body. */
const shown = {
  gen: 0,
  abort: null as AbortController | null,
  blobs: [] as string[],
  body: null as HTMLElement | null,
};

const root = document.getElementById("app") as HTMLElement;

export function alive(s: Screen): boolean {
  return s.gen === shown.gen;
}

/** How far the screen on show is scrolled (remembered for Back). */
export function scrollTop(): number {
  return shown.body ? shown.body.scrollTop : 0;
}

export function screen(opts: ScreenOpts): Screen {
  shown.gen++;
  if (shown.abort) shown.abort.abort();
  const abort = new AbortController();
  shown.abort = abort;
  revokeAll(shown.blobs);
  clear(root);
  const title = h("h1", { class: "bar-title", testid: "screen-title", text: opts.title });
  const header = h(
    "header",
    { class: "bar" },
    opts.back
      ? button(h("span", { class: "chev", attrs: { "aria-hidden": "true" }, text: "‹" }), () => nav.back(), {
          kind: "ghost",
          testid: "back",
          class: "bar-back",
        })
      : h("span", { class: "bar-logo", attrs: { "aria-hidden": "true" } }),
    title,
    opts.home ? userBadge() : null,
    button("Exit", () => exit(), { kind: "ghost", testid: "exit", class: "bar-exit" }),
  );
  const body = h("div", { class: "body" });
  const footer = h("div", { class: "footer" });
  const main = h("main", { class: "screen", testid: opts.testid }, body, footer);
  root.appendChild(header);
  root.appendChild(main);
  shown.body = body;
  return {
    gen: shown.gen,
    body,
    footer,
    signal: abort.signal,
    setTitle: (t) => {
      title.textContent = t;
    },
    image: (data, contentType) => blobUrl(data, contentType, shown.blobs),
  };
}

function userBadge(): HTMLElement {
  const user = app.session.user;
  if (!user) {
    return button("Log in", () => nav.go({ name: "login" }), {
      kind: "ghost",
      testid: "login-open",
      class: "bar-login",
    });
  }
  const b = button(user, () => nav.go({ name: "account" }), { kind: "ghost", testid: "user-name", class: "bar-user" });
  b.setAttribute("aria-label", `Signed in as ${user}: your account`);
  return b;
}

/** How long a notice stays (a tap dismisses it earlier). */
const NOTICE_MS = 6000;

/** The notice on show and the timer that hides it. */
const notice = { el: null as HTMLElement | null, timer: 0 };

/** Shows a brief notice over whatever screen is on show (it outlives a change of screen, so
 * "Signed in as …" is read on the screen the person lands on). A new notice replaces the last. */
export function notify(text: string, kind: "info" | "warn" = "info"): void {
  dismissNotice();
  const el = h(
    "div",
    {
      class: `notice notice-${kind}`,
      testid: "notice",
      attrs: { role: "status", "aria-live": "polite" },
      on: { click: () => dismissNotice() },
    },
    text,
  );
  document.body.appendChild(el);
  notice.el = el;
  notice.timer = window.setTimeout(dismissNotice, NOTICE_MS);
}

export function dismissNotice(): void {
  window.clearTimeout(notice.timer);
  notice.el?.remove();
  notice.el = null;
}

/** Closes the session and returns to a fresh start. */
export function exit(): void {
  nav.reset({ name: "exit" });
}

/** Replaces the body with a designed error state and a way forward (Try again: the same screen). */
export function showProblem(s: Screen, err: unknown, retry: () => void = () => nav.reload()): void {
  if (!alive(s)) return;
  clear(s.body);
  clear(s.footer);
  s.body.appendChild(problemBlock(describe(err), retry, exit));
}

/** Handles an error of a call: a lost session goes to the session-ended screen (true). */
export function sessionLost(err: unknown): boolean {
  if (!describe(err).sessionEnded) return false;
  nav.reset({ name: "ended", err });
  return true;
}

/** What a failed call on screen `s` leaves to its caller: nothing when the screen is gone or the
 * session ended (both handled here), else true. */
export function failed(s: Screen, err: unknown): boolean {
  return alive(s) && !sessionLost(err);
}
