// The podconnect weblet: the six steps on the printer's touch screen (launch, optional login,
// browse, customize, preview, print). This file only wires routes to screens; see routes.ts for
// the screens as data, nav.ts for the back stack and screens/ for each screen.
import { closeSession } from "./api";
import { nav, type Route } from "./routes";
import { scrollTop } from "./screen";
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
      void exitScreen();
      break;
    case "ended":
      endedScreen(route.err);
      break;
    case "home":
      void homeScreen();
      break;
    case "login":
      loginScreen();
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

nav.reset({ name: "start" });
