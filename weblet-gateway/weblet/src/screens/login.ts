// The optional storefront login, made for a touch keyboard: user name and password (Enter moves on
// and then logs in), and "Remember me on this printer" when a device user is signed in at the
// printer; the person may always go on without an account.
import { SHORT, session, setToken } from "../api";
import { type Child, clear, h } from "../dom";
import { nav } from "../routes";
import { alive, notify, screen, sessionLost } from "../screen";
import { accountChanged, app } from "../state";
import { describe, type Problem } from "../status";
import { banner } from "../widgets";
import { forgetButton } from "./account";

export function loginScreen(reason?: Problem): void {
  const s = screen({ title: "Log in", testid: "screen-login", back: true });
  const onEnter = (next: () => void) => (e: KeyboardEvent) => {
    if (e.key !== "Enter" || e.isComposing) return;
    e.preventDefault();
    next();
  };
  const pass = h("input", {
    testid: "login-password",
    attrs: {
      id: "login-pass",
      type: "password",
      autocomplete: "off",
      autocapitalize: "off",
      autocorrect: "off",
      spellcheck: "false",
      enterkeyhint: "go",
      maxlength: 1024,
    },
    on: { keydown: onEnter(() => void submit()) },
  });
  const user = h("input", {
    testid: "login-username",
    attrs: {
      id: "login-user",
      type: "text",
      inputmode: "email",
      autocomplete: "off",
      autocapitalize: "off",
      autocorrect: "off",
      spellcheck: "false",
      enterkeyhint: "next",
      maxlength: 256,
    },
    on: { keydown: onEnter(() => (pass.value ? void submit() : pass.focus())) },
  });
  const remember = h("input", {
    testid: "login-remember",
    attrs: { id: "login-remember", type: "checkbox", "aria-describedby": "login-remember-help" },
  });
  const msg = h("div", { class: "login-msg", testid: "login-message" });
  if (reason) {
    msg.appendChild(banner("warn", [h("strong", { text: `${reason.title}. ` }), reason.message], "login-reason"));
  }
  const deviceUser = app.session.deviceUser;
  s.body.appendChild(
    h(
      "form",
      {
        class: "form login",
        attrs: { id: "login-form", novalidate: true, autocomplete: "off" },
        on: {
          submit: (e) => {
            e.preventDefault();
            void submit();
          },
        },
      },
      h("p", {
        class: "lead-text",
        text: "Log in to your print shop account for your own prices and saved details. This is optional: you can print without an account.",
      }),
      msg,
      h(
        "div",
        { class: "field" },
        h("label", { class: "field-label", attrs: { for: "login-user" }, text: "User name or e-mail" }),
        user,
      ),
      h(
        "div",
        { class: "field" },
        h("label", { class: "field-label", attrs: { for: "login-pass" }, text: "Password" }),
        pass,
      ),
      // Only a device user (the person signed in at the printer) can be remembered.
      deviceUser
        ? [
            h(
              "label",
              { class: "check", attrs: { for: "login-remember" } },
              remember,
              h("span", { text: "Remember me on this printer" }),
            ),
            h("p", {
              class: "check-help",
              testid: "login-remember-help",
              attrs: { id: "login-remember-help" },
              text: "Next time you sign in at this printer, you are logged in here without typing. Your password is kept encrypted; “Forget me” removes it.",
            }),
          ]
        : null,
      deviceUser && app.session.ssoStored ? h("div", { class: "login-extra" }, forgetButton(s, msg)) : null,
    ),
  );
  const submitBtn = h("button", {
    class: "btn btn-primary",
    testid: "login-submit",
    attrs: { type: "submit", form: "login-form" },
    text: "Log in",
  });
  s.footer.appendChild(
    h("button", {
      class: "btn btn-secondary",
      testid: "login-skip",
      attrs: { type: "button" },
      text: "Continue without logging in",
      on: { click: () => nav.back() },
    }),
  );
  s.footer.appendChild(submitBtn);

  let busy = false;
  const refuse = (kind: "error" | "info", text: Child): void => {
    clear(msg);
    msg.appendChild(banner(kind, text, "login-error"));
  };
  const submit = async (): Promise<void> => {
    if (busy) return;
    const name = user.value.trim();
    if (!name || !pass.value) {
      refuse("error", "Enter your user name and password.");
      (name ? pass : user).focus();
      return;
    }
    busy = true;
    submitBtn.disabled = true;
    submitBtn.textContent = "Logging in…";
    const asked = deviceUser && remember.checked;
    try {
      const res = await session.login(
        { username: name, password: pass.value, remember: asked },
        { ...SHORT, signal: s.signal },
      );
      if (!alive(s)) return;
      if (res.sessionToken) setToken(res.sessionToken);
      pass.value = "";
      const shown = res.displayName || name;
      accountChanged(shown);
      if (res.remembered) app.session.ssoStored = true;
      notify(
        res.remembered
          ? `Signed in as ${shown}. This printer remembers you: next time you are signed in without typing.`
          : asked
            ? `Signed in as ${shown}. This printer could not remember you this time.`
            : `Signed in as ${shown}.`,
      );
      nav.reset({ name: "home" });
    } catch (e) {
      if (!alive(s)) return;
      pass.value = "";
      busy = false;
      submitBtn.disabled = false;
      submitBtn.textContent = "Log in";
      if (sessionLost(e)) return;
      const p = describe(e, "login");
      refuse(p.kind === "not-offered" ? "info" : "error", [h("strong", { text: `${p.title}. ` }), p.message]);
      pass.focus();
    }
  };
}
