// The optional storefront login: user name and password (and "remember me" when the printer's
// single sign-on offers it); the person may always go on without an account.
import { SHORT, session, setToken } from "../api";
import { button, clear, h } from "../dom";
import { nav } from "../routes";
import { alive, screen, sessionLost } from "../screen";
import { app } from "../state";
import { describe } from "../status";
import { banner } from "../widgets";

export function loginScreen(): void {
  const s = screen({ title: "Log in", testid: "screen-login", back: true });
  const user = h("input", {
    testid: "login-username",
    attrs: {
      id: "login-user",
      type: "text",
      autocomplete: "off",
      autocapitalize: "off",
      spellcheck: "false",
      maxlength: 256,
    },
  });
  const pass = h("input", {
    testid: "login-password",
    attrs: { id: "login-pass", type: "password", autocomplete: "off", maxlength: 1024 },
  });
  const remember = h("input", { testid: "login-remember", attrs: { id: "login-remember", type: "checkbox" } });
  const msg = h("div", { class: "login-msg", testid: "login-message" });
  const sso = app.session.ssoAvailable;
  s.body.appendChild(
    h(
      "form",
      {
        class: "form login",
        attrs: { novalidate: true, autocomplete: "off" },
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
      sso
        ? h(
            "label",
            { class: "check", attrs: { for: "login-remember" } },
            remember,
            h("span", { text: "Remember me on this printer's sign-in" }),
          )
        : null,
    ),
  );
  const submitBtn = button("Log in", () => void submit(), { kind: "primary", testid: "login-submit" });
  s.footer.appendChild(button("Continue without logging in", () => nav.back(), { testid: "login-skip" }));
  s.footer.appendChild(submitBtn);

  const submit = async (): Promise<void> => {
    clear(msg);
    const name = user.value.trim();
    if (!name || !pass.value) {
      msg.appendChild(banner("error", "Enter your user name and password.", "login-error"));
      return;
    }
    submitBtn.disabled = true;
    submitBtn.textContent = "Logging in…";
    try {
      const res = await session.login(
        { username: name, password: pass.value, remember: sso && remember.checked },
        { ...SHORT, signal: s.signal },
      );
      if (!alive(s)) return;
      if (res.sessionToken) setToken(res.sessionToken);
      pass.value = "";
      // Prices and products may differ for the person: everything is loaded again.
      app.session.user = res.displayName || name;
      app.session.lists.clear();
      app.session.categories = null;
      nav.reset({ name: "home" });
    } catch (e) {
      if (!alive(s)) return;
      pass.value = "";
      submitBtn.disabled = false;
      submitBtn.textContent = "Log in";
      if (sessionLost(e)) return;
      const p = describe(e, "login");
      const refused = banner(
        p.kind === "not-offered" ? "info" : "error",
        [h("strong", { text: `${p.title}. ` }), p.message],
        "login-error",
      );
      refused.setAttribute("role", "alert");
      msg.appendChild(refused);
    }
  };
}
