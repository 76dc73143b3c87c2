// The podconnect weblet: the six steps on the printer's touch screen (launch, optional login,
// browse, customize, preview, print). This file only takes what the printer hands over at launch
// (launch.ts) and wires routes to screens; see routes.ts for the screens as data, nav.ts for the
// back stack and screens/ for each screen.
import { closeSession, setDeviceUserAssertion } from "./api";
import { takeAssertion } from "./launch";
import { nav, type Route } from "./routes";
import { scrollTop } from "./screen";
import { accountScreen } from "./screens/account";
import { categoryScreen, homeScreen } from "./screens/catalog";
import { formScreen } from "./screens/form";
import { doneScreen, jobScreen } from "./screens/job";
import { loginScreen } from "./screens/login";
import { previewScreen } from "./screens/preview";
import { printScreen } from "./screens/print";
import { productScreen } from "./screens/product";
import { endedScreen, exitScreen, startScreen } from "./screens/session";

function show(route: Route, scroll: number): void {
  switch (route.name) {
    case "start":
      void startScreen();
      break;
    case "exit":
      void exitScreen(route.deviceUserAssertion);
      break;
    case "ended":
      endedScreen(route.err);
      break;
    case "home":
      void homeScreen();
      break;
    case "login":
      loginScreen(route.problem);
      break;
    case "account":
      accountScreen();
      break;
    case "category":
      void categoryScreen(route.category, scroll);
      break;
    case "product":
      void productScreen(route.productId);
      break;
    case "form":
      void formScreen(route);
      break;
    case "preview":
      void previewScreen(route.flow);
      break;
    case "print":
      void printScreen(route.flow);
      break;
    case "job":
      jobScreen(route.flow, route.submitted);
      break;
    case "done":
      doneScreen(route.flow, route.job);
      break;
  }
}

nav.attach(
  (route, entry) => show(route, entry.scrollTop),
  (entry) => {
    entry.scrollTop = scrollTop();
  },
);

window.addEventListener("pagehide", () => {
  void closeSession(true);
});

// The device user's assertion leaves the address before anything else happens. When the printer
// launches the weblet again in the same page (only the fragment changes), the new device user
// gets a fresh start: whatever the last person did is closed first.
window.addEventListener("hashchange", () => {
  const next = takeAssertion();
  if (next) nav.reset({ name: "exit", deviceUserAssertion: next });
});
setDeviceUserAssertion(takeAssertion());
nav.reset({ name: "start" });
