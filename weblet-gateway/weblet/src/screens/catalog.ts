// Browsing: the home screen's category tiles, and a category's subcategories and products (paged).
import { catalog, SHORT } from "../api";
import { button, clear, h } from "../dom";
import { formatPrice } from "../format";
import { type Category, ProductKind, type ProductSummary } from "../gen/podconnect/v1/catalog_pb";
import { nav } from "../routes";
import { alive, failed, type Screen, screen, showProblem } from "../screen";
import { app, type ListState } from "../state";
import { describe } from "../status";
import { banner, emptyState, thumbImage } from "../widgets";

const PAGE_SIZE = 8;

export async function homeScreen(): Promise<void> {
  const s = screen({ title: app.title, testid: "screen-home", home: true });
  s.body.appendChild(h("h2", { class: "lead", text: "What would you like to print?" }));
  const grid = h("div", { class: "tiles", testid: "category-list" });
  s.body.appendChild(grid);
  const session = app.session;
  if (!session.categories) {
    for (let i = 0; i < 6; i++)
      grid.appendChild(h("div", { class: "tile skeleton", attrs: { "aria-hidden": "true" } }));
    try {
      const res = await catalog.listCategories({}, { ...SHORT, signal: s.signal });
      session.categories = res.categories;
    } catch (e) {
      if (failed(s, e)) showProblem(s, e);
      return;
    }
    if (!alive(s)) return;
  }
  clear(grid);
  const cats = session.categories || [];
  if (cats.length === 0) {
    grid.replaceWith(emptyState("Nothing to print yet", "The print shop has no products on offer right now."));
    return;
  }
  for (const c of cats) grid.appendChild(categoryTile(c));
}

function categoryTile(c: Category): HTMLElement {
  const count = totalCount(c);
  return h(
    "button",
    {
      class: "tile",
      testid: `category-${c.id}`,
      attrs: { type: "button", "data-category-id": c.id },
      on: { click: () => nav.go({ name: "category", category: c }) },
    },
    h("span", { class: "tile-title", text: c.displayName }),
    c.description ? h("span", { class: "tile-text", text: c.description }) : null,
    h("span", { class: "tile-count", text: count === 1 ? "1 product" : `${count} products` }),
  );
}

function totalCount(c: Category): number {
  let n = c.productCount;
  for (const sub of c.subcategories) n += totalCount(sub);
  return n;
}

/** A category: its subcategories, and its products as far as the person has loaded them. Back
 * to it shows the same pages, scrolled to where the person left (`scrollTop`). */
export async function categoryScreen(c: Category, scrollTop: number): Promise<void> {
  const s = screen({ title: c.displayName, testid: "screen-category", back: true });
  if (c.subcategories.length) {
    s.body.appendChild(
      h(
        "div",
        { class: "chips", testid: "subcategory-list" },
        c.subcategories.map((sub) =>
          button(sub.displayName, () => nav.go({ name: "category", category: sub }), {
            testid: `subcategory-${sub.id}`,
            class: "chip",
          }),
        ),
      ),
    );
  }
  const grid = h("div", { class: "cards", testid: "product-list" });
  s.body.appendChild(grid);
  const more = h("div", { class: "more" });
  s.body.appendChild(more);

  const lists = app.session.lists;
  let list = lists.get(c.id);
  if (!list) {
    for (let i = 0; i < 4; i++)
      grid.appendChild(h("div", { class: "card skeleton", attrs: { "aria-hidden": "true" } }));
    try {
      const res = await catalog.listProducts({ categoryId: c.id, pageSize: PAGE_SIZE }, { ...SHORT, signal: s.signal });
      list = { products: res.products, nextPageToken: res.nextPageToken, total: res.totalSize };
      lists.set(c.id, list);
    } catch (e) {
      if (failed(s, e)) showProblem(s, e);
      return;
    }
    if (!alive(s)) return;
  }
  clear(grid);
  if (list.products.length === 0) {
    grid.replaceWith(
      c.subcategories.length
        ? emptyState("Pick a group", "Choose one of the groups above to see its products.")
        : emptyState("No products in this category", "Nothing here yet. Go back to look at the other categories."),
    );
    return;
  }
  for (const p of list.products) grid.appendChild(productCard(p));
  moreButton(s, c, list, grid, more);
  s.body.scrollTop = scrollTop;
}

/** "Show more products" under the cards while the category has more pages. */
function moreButton(s: Screen, c: Category, list: ListState, grid: HTMLElement, more: HTMLElement): void {
  clear(more);
  if (!list.nextPageToken) return;
  const again = (): void => moreButton(s, c, list, grid, more);
  const b = button(
    "Show more products",
    async () => {
      b.disabled = true;
      b.textContent = "Loading…";
      try {
        const res = await catalog.listProducts(
          { categoryId: c.id, pageSize: PAGE_SIZE, pageToken: list.nextPageToken },
          { ...SHORT, signal: s.signal },
        );
        if (!alive(s)) return;
        list.products = list.products.concat(res.products);
        list.nextPageToken = res.nextPageToken;
        for (const p of res.products) grid.appendChild(productCard(p));
        again();
      } catch (e) {
        if (!failed(s, e)) return;
        clear(more);
        more.appendChild(
          banner("error", `${describe(e).title}. `, "load-more-error", button("Try again", again, { testid: "retry" })),
        );
      }
    },
    { testid: "load-more" },
  );
  more.appendChild(b);
}

function productCard(p: ProductSummary): HTMLElement {
  return h(
    "button",
    {
      class: "card",
      testid: `product-${p.id}`,
      attrs: { type: "button", "data-product-id": p.id },
      on: { click: () => nav.go({ name: "product", productId: p.id }) },
    },
    thumbImage(p.id, "", `product-thumb-${p.id}`, "card-thumb"),
    h(
      "span",
      { class: "card-info" },
      h("span", { class: "card-title", text: p.displayName }),
      h("span", { class: "card-price", text: formatPrice(p.price) }),
      p.kind === ProductKind.CUSTOMIZABLE ? h("span", { class: "badge", text: "Customizable" }) : null,
    ),
  );
}
