// A product: its picture, facts and description, and the way on (Customize, or Preview and Print
// for a product printed as it is).
import { catalog, customization, SHORT } from "../api";
import { button, type Child, clear, h, spinner } from "../dom";
import { formatPrice, formatTrim } from "../format";
import { type Product, ProductKind } from "../gen/podconnect/v1/catalog_pb";
import type { Draft } from "../gen/podconnect/v1/customization_pb";
import { nav, type Route } from "../routes";
import { alive, failed, type Screen, screen, showProblem } from "../screen";
import { type Flow, newFlow } from "../state";
import { describe, notFound } from "../status";
import { banner, thumbImage } from "../widgets";

export async function productScreen(productId: string): Promise<void> {
  const s = screen({ title: "Product", testid: "screen-product", back: true });
  s.body.appendChild(spinner("Loading the product…"));
  let product: Product;
  try {
    const res = await catalog.getProduct({ productId }, { ...SHORT, signal: s.signal });
    if (!res.product) throw notFound("The product is not available.");
    product = res.product;
  } catch (e) {
    if (failed(s, e)) showProblem(s, e);
    return;
  }
  if (!alive(s)) return;
  s.setTitle(product.displayName);
  clear(s.body);
  s.body.appendChild(details(product));
  const status = h("div", { class: "footer-status" });
  s.footer.appendChild(status);
  if (product.kind === ProductKind.CUSTOMIZABLE) {
    s.footer.appendChild(
      button("Customize", () => nav.go({ name: "form", product, flow: null }), {
        kind: "primary",
        testid: "customize",
      }),
    );
  } else {
    staticActions(s, product, status);
  }
}

function details(product: Product): HTMLElement {
  const facts: Child[] = [];
  const fact = (k: string, v: string, testid: string): void => {
    if (v) facts.push(h("div", { class: "fact" }, h("dt", { text: k }), h("dd", { testid, text: v })));
  };
  fact("Size", formatTrim(product.trimSize), "product-trim");
  fact("Pages", product.pageCount ? String(product.pageCount) : "", "product-pages");
  fact("Price", formatPrice(product.price), "product-price");
  return h(
    "div",
    { class: "product" },
    thumbImage(product.id, product.displayName, "product-image", "product-thumb"),
    h(
      "div",
      { class: "product-info" },
      h("h2", { class: "product-name", testid: "product-name", text: product.displayName }),
      product.shortDescription ? h("p", { class: "product-short", text: product.shortDescription }) : null,
      h("dl", { class: "facts" }, facts),
      product.description
        ? h("p", { class: "product-desc", testid: "product-description", text: product.description })
        : null,
    ),
  );
}

/** Preview and Print for a product printed as it is: each makes the draft, then goes on. */
function staticActions(s: Screen, product: Product, status: HTMLElement): void {
  const startFlow = async (to: (f: Flow) => Route, b: HTMLButtonElement, busy: string): Promise<void> => {
    const label = b.textContent;
    b.disabled = true;
    b.textContent = busy;
    clear(status);
    try {
      const res = await customization.createDraft({ productId: product.id }, { ...SHORT, signal: s.signal });
      if (!alive(s)) return;
      nav.go(to(newFlow(product, null, res.draft as Draft, res.fieldErrors)));
    } catch (e) {
      if (!failed(s, e)) return;
      b.disabled = false;
      b.textContent = label;
      const p = describe(e);
      status.appendChild(banner("error", `${p.title}: ${p.message}`, "product-error"));
    }
  };
  const pv: HTMLButtonElement = button(
    "Preview",
    () => startFlow((flow) => ({ name: "preview", flow }), pv, "Opening…"),
    { testid: "preview-static" },
  );
  const pr: HTMLButtonElement = button(
    "Print",
    () => startFlow((flow) => ({ name: "print", flow }), pr, "Preparing…"),
    { kind: "primary", testid: "print-static" },
  );
  s.footer.appendChild(pv);
  s.footer.appendChild(pr);
}
