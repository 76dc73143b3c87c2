// The podconnect weblet: the six steps on the printer's touch screen (launch, optional login,
// browse, customize, preview, print). Every screen is a render function; async work checks that
// its screen is still the current one before it touches the DOM.
import {
  catalog,
  closeSession,
  customization,
  describe,
  print,
  session,
  setToken,
  Code,
  ConnectError,
  LONG,
  SHORT,
} from "./api";
import { blobUrl, button, clear, h, revokeAll, spinner, type Child } from "./dom";
import {
  colorLabel,
  formatPrice,
  formatTrim,
  isTerminal,
  jobStateLabel,
  jobStateName,
  sidesLabel,
  timeOfDay,
} from "./format";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ProductKind, type Category, type Product, type ProductSummary } from "./gen/podconnect/v1/catalog_pb";
import {
  DraftState,
  FieldType,
  type Draft,
  type FieldError,
  type Form,
  type FormField,
  type PrintFile,
} from "./gen/podconnect/v1/customization_pb";
import {
  ColorMode,
  JobState,
  Sides,
  type GetPrinterCapabilitiesResponse,
  type Job,
  type SubmitJobResponse,
} from "./gen/podconnect/v1/print_pb";

const params = new URLSearchParams(window.location.search);
const DEVICE_RE = /^[A-Za-z0-9._-]{1,64}$/;
const deviceId = DEVICE_RE.test(params.get("device") || "") ? (params.get("device") as string) : "weblet";
const locale = (navigator.languages && navigator.languages[0]) || navigator.language || "";
const APP_TITLE = "Print shop";

// ---- app state: JS variables only (the printer keeps nothing) ----

interface ListState {
  products: ProductSummary[];
  nextPageToken: string;
  total: number;
}

interface AppState {
  user: string;
  ssoAvailable: boolean;
  categories: Category[] | null;
  lists: Map<string, ListState>;
  thumbs: Map<string, Promise<string>>;
  blobs: string[];
}

function freshState(): AppState {
  return { user: "", ssoAvailable: false, categories: null, lists: new Map(), thumbs: new Map(), blobs: [] };
}

let app = freshState();
let previewBlobs: string[] = [];

/** One product being made: its form, its draft and the values typed so far. */
interface Flow {
  product: Product;
  form: Form | null;
  draft: Draft;
  values: Record<string, string>;
  printFile: PrintFile | null;
  /** The draft's field errors as the server last reported them. */
  errors: FieldError[];
}

// ---- screens ----

const root = document.getElementById("app") as HTMLElement;
let gen = 0;
let abort: AbortController | null = null;

interface Screen {
  gen: number;
  body: HTMLElement;
  footer: HTMLElement;
  signal: AbortSignal;
  setTitle(t: string): void;
}

interface ScreenOpts {
  title: string;
  testid: string;
  back?: () => void;
  home?: boolean;
}

function alive(s: Screen): boolean {
  return s.gen === gen;
}

function screen(opts: ScreenOpts): Screen {
  gen++;
  if (abort) abort.abort();
  abort = new AbortController();
  revokeAll(previewBlobs);
  clear(root);
  const title = h("h1", { class: "bar-title", testid: "screen-title", text: opts.title });
  const header = h(
    "header",
    { class: "bar" },
    opts.back
      ? button(h("span", { class: "chev", attrs: { "aria-hidden": "true" }, text: "‹" }), opts.back, {
          kind: "ghost",
          testid: "back",
          class: "bar-back",
        })
      : h("span", { class: "bar-logo", attrs: { "aria-hidden": "true" } }),
    title,
    opts.home
      ? app.user
        ? h("span", { class: "bar-user", testid: "user-name", text: app.user })
        : button("Log in", () => loginScreen(), { kind: "ghost", testid: "login-open", class: "bar-login" })
      : null,
    button("Exit", () => exit(), { kind: "ghost", testid: "exit", class: "bar-exit" }),
  );
  const body = h("div", { class: "body" });
  const footer = h("div", { class: "footer" });
  const main = h("main", { class: "screen", testid: opts.testid }, body, footer);
  root.appendChild(header);
  root.appendChild(main);
  return {
    gen,
    body,
    footer,
    signal: abort.signal,
    setTitle: (t) => {
      title.textContent = t;
    },
  };
}

/** A designed error state: what happened and a way forward. Never a blank screen. */
function problemBlock(err: unknown, retry: () => void, retryLabel = "Try again"): HTMLElement {
  const p = describe(err);
  return h(
    "div",
    { class: "state state-error", testid: "error", attrs: { role: "alert" } },
    h("div", { class: "state-icon icon-alert", attrs: { "aria-hidden": "true" }, text: "!" }),
    h("h2", { class: "state-title", testid: "error-title", text: p.title }),
    h("p", { class: "state-text", testid: "error-message", text: p.message }),
    p.sessionEnded
      ? button("Start again", () => restart(), { kind: "primary", testid: "retry" })
      : button(retryLabel, retry, { kind: "primary", testid: "retry" }),
  );
}

function showProblem(s: Screen, err: unknown, retry: () => void): void {
  if (!alive(s)) return;
  clear(s.body);
  clear(s.footer);
  s.body.appendChild(problemBlock(err, retry));
}

function emptyState(title: string, text: string, testid = "empty"): HTMLElement {
  return h(
    "div",
    { class: "state state-empty", testid },
    h("div", { class: "state-icon icon-empty", attrs: { "aria-hidden": "true" } }),
    h("h2", { class: "state-title", text: title }),
    h("p", { class: "state-text", text }),
  );
}

function banner(kind: "error" | "info" | "warn", text: string, testid: string, action?: HTMLElement): HTMLElement {
  return h(
    "div",
    { class: "banner banner-" + kind, testid, attrs: { role: kind === "error" ? "alert" : "status" } },
    h("span", { class: "banner-text", text }),
    action || null,
  );
}

// ---- launch and exit ----

async function start(): Promise<void> {
  const s = screen({ title: APP_TITLE, testid: "screen-start" });
  s.body.appendChild(spinner("Starting the print shop…"));
  try {
    const res = await session.startSession({ deviceId, locale }, { ...SHORT, signal: s.signal });
    if (!alive(s)) return;
    setToken(res.sessionToken);
    app.ssoAvailable = res.ssoAvailable;
    home();
  } catch (e) {
    showProblem(s, e, () => start());
  }
}

/** Closes the session and returns to a fresh start. */
async function exit(): Promise<void> {
  const s = screen({ title: APP_TITLE, testid: "screen-exit" });
  s.body.appendChild(spinner("Closing your session…", "closing"));
  await closeSession();
  revokeAll(app.blobs);
  app = freshState();
  if (alive(s)) start();
}

/** The session is gone (expired): forget everything and start over. */
function restart(): void {
  void exit();
}

window.addEventListener("pagehide", () => {
  void closeSession(true);
});

/** Handles an error of a call: a lost session goes to the session-ended screen. */
function sessionLost(err: unknown): boolean {
  if (ConnectError.from(err).code !== Code.Unauthenticated) return false;
  const s = screen({ title: APP_TITLE, testid: "screen-ended" });
  s.body.appendChild(problemBlock(err, () => restart()));
  return true;
}

// ---- home: categories ----

async function home(): Promise<void> {
  const s = screen({ title: APP_TITLE, testid: "screen-home", home: true });
  s.body.appendChild(h("h2", { class: "lead", text: "What would you like to print?" }));
  const grid = h("div", { class: "tiles", testid: "category-list" });
  s.body.appendChild(grid);
  if (!app.categories) {
    for (let i = 0; i < 6; i++) grid.appendChild(h("div", { class: "tile skeleton", attrs: { "aria-hidden": "true" } }));
    try {
      const res = await catalog.listCategories({}, { ...SHORT, signal: s.signal });
      app.categories = res.categories;
    } catch (e) {
      if (!alive(s) || sessionLost(e)) return;
      return showProblem(s, e, () => home());
    }
    if (!alive(s)) return;
  }
  clear(grid);
  const cats = app.categories || [];
  if (cats.length === 0) {
    grid.replaceWith(emptyState("Nothing to print yet", "The print shop has no products on offer right now."));
    return;
  }
  for (const c of cats) grid.appendChild(categoryTile(c, () => home()));
}

function categoryTile(c: Category, back: () => void): HTMLElement {
  const count = totalCount(c);
  return h(
    "button",
    {
      class: "tile",
      testid: "category-" + c.id,
      attrs: { type: "button", "data-category-id": c.id },
      on: { click: () => categoryScreen(c, back) },
    },
    h("span", { class: "tile-title", text: c.displayName }),
    c.description ? h("span", { class: "tile-text", text: c.description }) : null,
    h("span", { class: "tile-count", text: count === 1 ? "1 product" : count + " products" }),
  );
}

function totalCount(c: Category): number {
  let n = c.productCount;
  for (const sub of c.subcategories) n += totalCount(sub);
  return n;
}

// ---- a category: subcategories and products (paged) ----

const PAGE_SIZE = 8;

async function categoryScreen(c: Category, back: () => void): Promise<void> {
  const self = () => categoryScreen(c, back);
  const s = screen({ title: c.displayName, testid: "screen-category", back });
  if (c.subcategories.length) {
    s.body.appendChild(
      h(
        "div",
        { class: "chips", testid: "subcategory-list" },
        c.subcategories.map((sub) =>
          button(sub.displayName, () => categoryScreen(sub, self), { testid: "subcategory-" + sub.id, class: "chip" }),
        ),
      ),
    );
  }
  const grid = h("div", { class: "cards", testid: "product-list" });
  s.body.appendChild(grid);
  const more = h("div", { class: "more" });
  s.body.appendChild(more);

  let list = app.lists.get(c.id);
  if (!list) {
    for (let i = 0; i < 4; i++) grid.appendChild(h("div", { class: "card skeleton", attrs: { "aria-hidden": "true" } }));
    try {
      const res = await catalog.listProducts({ categoryId: c.id, pageSize: PAGE_SIZE }, { ...SHORT, signal: s.signal });
      list = { products: res.products, nextPageToken: res.nextPageToken, total: res.totalSize };
      app.lists.set(c.id, list);
    } catch (e) {
      if (!alive(s) || sessionLost(e)) return;
      return showProblem(s, e, self);
    }
    if (!alive(s)) return;
  }
  const state = list;
  clear(grid);
  if (state.products.length === 0) {
    grid.replaceWith(
      c.subcategories.length
        ? emptyState("Pick a group", "Choose one of the groups above to see its products.")
        : emptyState("No products in this category", "Nothing here yet. Go back to look at the other categories."),
    );
    return;
  }
  for (const p of state.products) grid.appendChild(productCard(p, self));

  const renderMore = (): void => {
    clear(more);
    if (!state.nextPageToken) return;
    const b = button("Show more products", async () => {
      b.disabled = true;
      b.textContent = "Loading…";
      try {
        const res = await catalog.listProducts(
          { categoryId: c.id, pageSize: PAGE_SIZE, pageToken: state.nextPageToken },
          { ...SHORT, signal: s.signal },
        );
        if (!alive(s)) return;
        state.products = state.products.concat(res.products);
        state.nextPageToken = res.nextPageToken;
        for (const p of res.products) grid.appendChild(productCard(p, self));
        renderMore();
      } catch (e) {
        if (!alive(s) || sessionLost(e)) return;
        clear(more);
        more.appendChild(
          banner("error", describe(e).title + ". ", "load-more-error", button("Try again", renderMore, { testid: "retry" })),
        );
      }
    }, { testid: "load-more" });
    more.appendChild(b);
  };
  renderMore();
}

function thumbnail(productId: string): Promise<string> {
  let p = app.thumbs.get(productId);
  if (!p) {
    p = catalog.getThumbnail({ productId }, SHORT).then((r) => blobUrl(r.data, r.contentType, app.blobs));
    p.catch(() => app.thumbs.delete(productId));
    app.thumbs.set(productId, p);
  }
  return p;
}

function thumbImage(productId: string, alt: string, testid: string, cls: string): HTMLElement {
  const box = h("div", { class: cls + " thumb-loading", testid });
  thumbnail(productId).then(
    (url) => {
      const img = h("img", { attrs: { src: url, alt, draggable: "false" } });
      clear(box);
      box.appendChild(img);
      box.classList.remove("thumb-loading");
    },
    () => {
      box.classList.remove("thumb-loading");
      box.classList.add("thumb-missing");
    },
  );
  return box;
}

function productCard(p: ProductSummary, back: () => void): HTMLElement {
  return h(
    "button",
    {
      class: "card",
      testid: "product-" + p.id,
      attrs: { type: "button", "data-product-id": p.id },
      on: { click: () => productScreen(p.id, back) },
    },
    thumbImage(p.id, "", "product-thumb-" + p.id, "card-thumb"),
    h(
      "span",
      { class: "card-info" },
      h("span", { class: "card-title", text: p.displayName }),
      h("span", { class: "card-price", text: formatPrice(p.price) }),
      p.kind === ProductKind.CUSTOMIZABLE ? h("span", { class: "badge", text: "Customizable" }) : null,
    ),
  );
}

// ---- a product ----

async function productScreen(productId: string, back: () => void): Promise<void> {
  const self = () => productScreen(productId, back);
  const s = screen({ title: "Product", testid: "screen-product", back });
  s.body.appendChild(spinner("Loading the product…"));
  let product: Product;
  try {
    const res = await catalog.getProduct({ productId }, { ...SHORT, signal: s.signal });
    if (!res.product) throw new ConnectError("The product is not available.", Code.NotFound);
    product = res.product;
  } catch (e) {
    if (!alive(s) || sessionLost(e)) return;
    return showProblem(s, e, self);
  }
  if (!alive(s)) return;
  s.setTitle(product.displayName);
  clear(s.body);
  const facts: Child[] = [];
  const fact = (k: string, v: string, testid: string) =>
    v ? facts.push(h("div", { class: "fact" }, h("dt", { text: k }), h("dd", { testid, text: v }))) : 0;
  fact("Size", formatTrim(product.trimSize), "product-trim");
  fact("Pages", product.pageCount ? String(product.pageCount) : "", "product-pages");
  fact("Price", formatPrice(product.price), "product-price");
  s.body.appendChild(
    h(
      "div",
      { class: "product" },
      thumbImage(product.id, product.displayName, "product-image", "product-thumb"),
      h(
        "div",
        { class: "product-info" },
        h("h2", { class: "product-name", testid: "product-name", text: product.displayName }),
        product.shortDescription ? h("p", { class: "product-short", text: product.shortDescription }) : null,
        h("dl", { class: "facts" }, facts),
        product.description ? h("p", { class: "product-desc", testid: "product-description", text: product.description }) : null,
      ),
    ),
  );
  const status = h("div", { class: "footer-status" });
  s.footer.appendChild(status);
  const startFlow = async (then: (f: Flow) => void, b: HTMLButtonElement, busy: string): Promise<void> => {
    const label = b.textContent;
    b.disabled = true;
    b.textContent = busy;
    clear(status);
    try {
      const res = await customization.createDraft({ productId: product.id }, { ...SHORT, signal: s.signal });
      if (!alive(s)) return;
      const draft = res.draft as Draft;
      then({ product, form: null, draft, values: Object.assign({}, draft.values), printFile: null, errors: res.fieldErrors });
    } catch (e) {
      if (!alive(s) || sessionLost(e)) return;
      b.disabled = false;
      b.textContent = label;
      status.appendChild(banner("error", describe(e).title + ": " + describe(e).message, "product-error"));
    }
  };
  if (product.kind === ProductKind.CUSTOMIZABLE) {
    s.footer.appendChild(
      button("Customize", () => formScreen(null, product, self), { kind: "primary", testid: "customize" }),
    );
  } else {
    const pv: HTMLButtonElement = button(
      "Preview",
      () => startFlow((f) => previewScreen(f, self), pv, "Opening…"),
      { testid: "preview-static" },
    );
    const pr: HTMLButtonElement = button(
      "Print",
      () => startFlow((f) => printScreen(f, self), pr, "Preparing…"),
      { kind: "primary", testid: "print-static" },
    );
    s.footer.appendChild(pv);
    s.footer.appendChild(pr);
  }
}

// ---- the customization form ----

function byOrder<T extends { displayOrder: number }>(items: T[]): T[] {
  return items
    .map((x, i) => ({ x, i }))
    .sort((a, b) => a.x.displayOrder - b.x.displayOrder || a.i - b.i)
    .map((e) => e.x);
}

interface FieldRef {
  field: FormField;
  wrap: HTMLElement;
  error: HTMLElement;
  setValue?: (v: string) => void;
}

async function formScreen(existing: Flow | null, product: Product, back: () => void): Promise<void> {
  const s = screen({ title: product.displayName, testid: "screen-form", back });
  s.body.appendChild(spinner("Preparing the form…"));
  let flow: Flow;
  try {
    const form = existing && existing.form
      ? existing.form
      : (await customization.getForm({ productId: product.id }, { ...SHORT, signal: s.signal })).form;
    if (!form) throw new ConnectError("The product has no form.", Code.NotFound);
    if (existing && existing.draft.state !== DraftState.FINALIZED) {
      flow = existing;
      flow.form = form;
    } else {
      // New, or the old draft was finalized (it can no longer change): a new draft with the values.
      const editable = new Set(form.fields.filter((f) => !f.readOnly).map((f) => f.id));
      const values: Record<string, string> = {};
      if (existing) for (const k of Object.keys(existing.values)) if (editable.has(k) && existing.values[k] !== "") values[k] = existing.values[k];
      const res = await customization.createDraft(
        { productId: product.id, quantity: existing ? existing.draft.quantity : 0, values },
        { ...SHORT, signal: s.signal },
      );
      const draft = res.draft as Draft;
      flow = { product, form, draft, values: Object.assign({}, draft.values), printFile: null, errors: res.fieldErrors };
    }
  } catch (e) {
    if (!alive(s) || sessionLost(e)) return;
    return showProblem(s, e, () => formScreen(existing, product, back));
  }
  if (!alive(s)) return;
  renderForm(s, flow, back);
}

function renderForm(s: Screen, flow: Flow, back: () => void): void {
  const form = flow.form as Form;
  const self = () => formScreen(flow, flow.product, back);
  clear(s.body);
  const fields = new Map<string, FormField>();
  for (const f of form.fields) fields.set(f.id, f);
  const refs = new Map<string, FieldRef>();
  const touched = new Set<string>();
  const pending = new Map<string, string>();
  let pendingQuantity: number | undefined;
  let errors: FieldError[] = [];
  let revealAll = false;
  let timer = 0;
  let inflight: Promise<void> | null = null;

  const topBanner = h("div", { class: "form-banner", testid: "form-banner" });
  const status = h("span", { class: "save-status", testid: "save-status", attrs: { "aria-live": "polite" } });

  const visible = (f: FormField, depth = 0): boolean => {
    const c = f.visibleWhen;
    if (!c) return true;
    const ctl = fields.get(c.fieldId);
    if (ctl && (depth > 16 || !visible(ctl, depth + 1))) return false;
    return c.values.indexOf(flow.values[c.fieldId] || "") >= 0;
  };

  const refreshVisibility = (): void => {
    refs.forEach((r) => {
      const v = visible(r.field);
      r.wrap.hidden = !v;
    });
    sectionEls.forEach((el) => {
      const anyVisible = Array.prototype.some.call(el.querySelectorAll(".field"), (w: HTMLElement) => !w.hidden);
      el.hidden = !anyVisible;
    });
  };

  const showErrors = (): void => {
    const byField = new Map<string, FieldError>();
    for (const e of errors) if (!byField.has(e.fieldId)) byField.set(e.fieldId, e);
    refs.forEach((r, id) => {
      if (pending.has(id)) return; // the person is still typing here: the answer is stale
      const e = byField.get(id);
      const show = !!e && (revealAll || touched.has(id)) && visible(r.field);
      r.error.textContent = show && e ? e.message : "";
      r.error.hidden = !show;
      r.wrap.classList.toggle("invalid", show);
      const input = r.wrap.querySelector("[data-input]");
      if (input) input.setAttribute("aria-invalid", show ? "true" : "false");
    });
    const q = byField.get("");
    const qref = refs.get("");
    if (qref) {
      qref.error.textContent = q ? q.message : "";
      qref.error.hidden = !q;
    }
    // Errors of fields the form does not show (unknown ids) go to the banner once revealed.
    const orphan = errors.filter((e) => e.fieldId !== "" && !refs.has(e.fieldId));
    if (revealAll && orphan.length) {
      clear(topBanner);
      topBanner.appendChild(banner("error", orphan.map((e) => e.message).join(" "), "form-error"));
    }
  };

  const setStatus = (text: string, kind: "" | "saving" | "error" = ""): void => {
    status.textContent = text;
    status.className = "save-status " + kind;
  };

  const flush = async (): Promise<boolean> => {
    while (inflight) await inflight;
    if (!alive(s)) return false;
    if (pending.size === 0 && pendingQuantity === undefined) return true;
    const batch = new Map(pending);
    pending.clear();
    const quantity = pendingQuantity;
    pendingQuantity = undefined;
    const values: Record<string, string> = {};
    const clearFieldIds: string[] = [];
    batch.forEach((v, k) => (v === "" ? clearFieldIds.push(k) : (values[k] = v)));
    setStatus("Saving…", "saving");
    let ok = true;
    inflight = customization
      .updateDraft({ draftId: flow.draft.id, values, clearFieldIds, quantity }, { ...SHORT, signal: s.signal })
      .then((res) => {
        if (!alive(s)) return;
        if (res.draft) flow.draft = res.draft;
        errors = res.fieldErrors;
        flow.errors = errors;
        setStatus(errors.length ? "" : "All fields OK");
        showErrors();
        if (!errors.length) clear(topBanner);
      })
      .catch((e) => {
        ok = false;
        if (!alive(s) || sessionLost(e)) return;
        batch.forEach((v, k) => {
          if (!pending.has(k)) pending.set(k, v);
        });
        if (quantity !== undefined && pendingQuantity === undefined) pendingQuantity = quantity;
        const p = describe(e);
        // The fields just typed in: their old errors are stale. When the server refused the values
        // themselves (INVALID_ARGUMENT, e.g. a value that is too long), its reason goes right there.
        const refused = ConnectError.from(e).code === Code.InvalidArgument;
        let first: HTMLElement | null = null;
        batch.forEach((_, k) => {
          const r = refs.get(k);
          if (!r) return;
          r.error.textContent = refused ? p.message : "";
          r.error.hidden = !refused;
          r.wrap.classList.toggle("invalid", refused);
          if (refused && !first) first = r.wrap;
        });
        if (first) (first as HTMLElement).scrollIntoView({ block: "nearest" });
        setStatus("Not saved", "error");
        clear(topBanner);
        topBanner.appendChild(
          banner("error", p.title + ". Your changes are kept on this screen.", "save-error", button("Try again", () => void flush(), { testid: "retry" })),
        );
      })
      .then(() => {
        inflight = null;
      });
    await inflight;
    return ok;
  };

  const schedule = (): void => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void flush(), 450);
  };

  const change = (id: string, v: string, now = false): void => {
    flow.values[id] = v;
    pending.set(id, v);
    touched.add(id);
    refreshVisibility();
    if (now) {
      window.clearTimeout(timer);
      void flush();
    } else schedule();
  };

  // -- field widgets --
  const fieldEl = (f: FormField): HTMLElement => {
    const inputId = "f-" + f.id.replace(/[^A-Za-z0-9_-]/g, "_");
    const error = h("p", { class: "field-error", testid: "field-error-" + f.id, attrs: { id: inputId + "-err", "aria-live": "polite" } });
    error.hidden = true;
    const value = flow.values[f.id] || "";
    let control: HTMLElement;
    const ref: FieldRef = { field: f, wrap: null as unknown as HTMLElement, error };
    if (f.type === FieldType.CHOICE) {
      const opts = f.options.map((o) => {
        const b = h(
          "button",
          {
            class: "choice" + (o.swatchColor || o.image ? " choice-visual" : ""),
            testid: "choice-" + f.id + "-" + o.value,
            attrs: { type: "button", role: "radio", "aria-checked": o.value === value ? "true" : "false", disabled: f.readOnly, "data-value": o.value },
          },
          o.image && o.image.data.length
            ? h("img", { class: "choice-img", attrs: { src: blobUrl(o.image.data, o.image.contentType, app.blobs), alt: "" } })
            : o.swatchColor
              ? swatch(o.swatchColor)
              : null,
          h("span", { class: "choice-label", text: o.label || o.value }),
        );
        b.addEventListener("click", () => {
          ref.setValue && ref.setValue(o.value);
          change(f.id, o.value, true);
        });
        return b;
      });
      control = h("div", { class: "choices", testid: "field-" + f.id, attrs: { role: "radiogroup", "aria-labelledby": inputId + "-label", "data-input": true } }, opts);
      ref.setValue = (v) => opts.forEach((b) => b.setAttribute("aria-checked", b.getAttribute("data-value") === v ? "true" : "false"));
    } else {
      const multiline = f.type === FieldType.MULTILINE_TEXT;
      const input = multiline ? h("textarea", { attrs: { rows: Math.min(Math.max(f.maxLines || 3, 2), 5) } }) : h("input");
      const attrs: Record<string, string | number | boolean | undefined> = {
        id: inputId,
        "data-testid": "field-" + f.id,
        "data-input": "",
        placeholder: f.placeholder || undefined,
        maxlength: f.maxLength > 0 ? f.maxLength : undefined,
        "aria-describedby": inputId + "-err",
        autocomplete: "off",
        autocapitalize: f.type === FieldType.TEXT || multiline ? "sentences" : "off",
        spellcheck: "false",
        readonly: f.readOnly,
        required: f.required,
      };
      if (!multiline) {
        switch (f.type) {
          case FieldType.EMAIL:
            attrs.type = "email";
            attrs.inputmode = "email";
            break;
          case FieldType.PHONE:
            attrs.type = "tel";
            attrs.inputmode = "tel";
            break;
          case FieldType.NUMBER:
            attrs.type = "text";
            attrs.inputmode = "decimal";
            break;
          case FieldType.DATE:
            attrs.type = "date";
            break;
          default:
            attrs.type = "text";
        }
      }
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v !== undefined && v !== false) input.setAttribute(k, v === true ? "" : String(v));
      }
      (input as HTMLInputElement).value = value;
      input.addEventListener("input", () => change(f.id, (input as HTMLInputElement).value));
      input.addEventListener("blur", () => {
        touched.add(f.id);
        if (pending.has(f.id)) {
          window.clearTimeout(timer);
          void flush();
        } else showErrors();
      });
      control = input;
    }
    const wrap = h(
      "div",
      { class: "field field-" + FieldType[f.type].toLowerCase(), testid: "field-wrap-" + f.id, attrs: { "data-field-id": f.id } },
      h(
        f.type === FieldType.CHOICE ? "span" : "label",
        { class: "field-label", attrs: { id: inputId + "-label", for: f.type === FieldType.CHOICE ? undefined : inputId } },
        f.label || f.code || f.id,
        f.required ? h("span", { class: "req", attrs: { "aria-label": "required" }, text: " *" }) : null,
      ),
      f.help ? h("p", { class: "field-help", text: f.help }) : null,
      control,
      error,
    );
    ref.wrap = wrap;
    refs.set(f.id, ref);
    return wrap;
  };

  // -- layout: unsectioned fields first, then sections by display_order --
  const sectionEls: HTMLElement[] = [];
  const sectionIds = new Set(form.sections.map((x) => x.id));
  const loose = byOrder(form.fields.filter((f) => !f.sectionId || !sectionIds.has(f.sectionId)));
  const formEl = h("form", { class: "form", testid: "customize-form", attrs: { novalidate: true, autocomplete: "off" } });
  formEl.addEventListener("submit", (e) => e.preventDefault());
  if (loose.length) formEl.appendChild(h("div", { class: "section" }, loose.map(fieldEl)));
  for (const sec of byOrder(form.sections)) {
    const fs = byOrder(form.fields.filter((f) => f.sectionId === sec.id));
    if (!fs.length) continue;
    const el = h(
      "section",
      { class: "section", testid: "section-" + sec.id },
      h("h2", { class: "section-title", text: sec.title }),
      sec.description ? h("p", { class: "section-desc", text: sec.description }) : null,
      fs.map(fieldEl),
    );
    sectionEls.push(el);
    formEl.appendChild(el);
  }

  // -- quantity (when the product offers choices) --
  const rule = flow.product.quantity;
  if (rule && rule.options.length > 1) {
    const error = h("p", { class: "field-error", testid: "field-error-quantity" });
    error.hidden = true;
    const chips = rule.options.map((q) =>
      h("button", {
        class: "choice choice-small",
        testid: "quantity-" + q,
        attrs: { type: "button", role: "radio", "aria-checked": q === flow.draft.quantity ? "true" : "false", "data-value": q },
        text: String(q),
        on: {
          click: () => {
            chips.forEach((c) => c.setAttribute("aria-checked", c.getAttribute("data-value") === String(q) ? "true" : "false"));
            pendingQuantity = q;
            window.clearTimeout(timer);
            void flush();
          },
        },
      }),
    );
    const wrap = h(
      "section",
      { class: "section", testid: "section-quantity" },
      h("h2", { class: "section-title", text: "Quantity" }),
      h("div", { class: "field" }, h("div", { class: "choices", testid: "field-quantity", attrs: { role: "radiogroup" } }, chips), error),
    );
    refs.set("", { field: { visibleWhen: undefined } as FormField, wrap: h("div"), error });
    formEl.appendChild(wrap);
  }

  if (!form.fields.length) formEl.appendChild(emptyState("Nothing to fill in", "This product is printed as it is.", "form-empty"));

  s.body.appendChild(topBanner);
  s.body.appendChild(formEl);
  refreshVisibility();

  // The draft's errors so far; those of untouched fields stay out of sight until Preview.
  errors = flow.errors;
  showErrors();

  const next: HTMLButtonElement = button(
    "Preview",
    async () => {
      window.clearTimeout(timer);
      next.disabled = true;
      next.textContent = "Checking…";
      const ok = await flush();
      if (!alive(s)) return;
      next.disabled = false;
      next.textContent = "Preview";
      if (!ok) return;
      revealAll = true;
      showErrors();
      const shown = errors.filter((e) => {
        const r = refs.get(e.fieldId);
        return !r || e.fieldId === "" || visible(r.field);
      });
      if (shown.length || flow.draft.state === DraftState.EDITING) {
        clear(topBanner);
        topBanner.appendChild(
          banner(
            "error",
            shown.length === 1 ? "One field needs your attention." : shown.length + " fields need your attention.",
            "form-error",
          ),
        );
        const first = s.body.querySelector(".field.invalid") as HTMLElement | null;
        (first || topBanner).scrollIntoView({ block: "center" });
        const input = first && (first.querySelector("input,textarea,button") as HTMLElement | null);
        if (input) input.focus();
        return;
      }
      previewScreen(flow, self);
    },
    { kind: "primary", testid: "preview-button" },
  );
  s.footer.appendChild(status);
  s.footer.appendChild(next);
}

function swatch(color: string): HTMLElement {
  const el = h("span", { class: "swatch", attrs: { "aria-hidden": "true" } });
  if (/^#[0-9a-fA-F]{6}$/.test(color)) el.style.backgroundColor = color; // CSSOM: allowed by the CSP
  return el;
}

// ---- preview ----

async function previewScreen(flow: Flow, back: () => void): Promise<void> {
  const self = () => previewScreen(flow, back);
  const s = screen({ title: "Preview", testid: "screen-preview", back });
  s.body.appendChild(spinner("Rendering your preview…", "preview-loading"));
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  const widthPx = Math.max(400, Math.min(1600, Math.round(Math.min(window.innerWidth, 1024) * 0.8 * dpr)));
  let pages: { url: string; n: number }[];
  let pageCount = 0;
  try {
    const res = await customization.renderPreview({ draftId: flow.draft.id, widthPx }, { ...LONG, signal: s.signal });
    if (!alive(s)) return;
    pageCount = res.pageCount || res.pages.length;
    pages = res.pages.map((p) => ({ url: blobUrl(p.data, p.contentType, previewBlobs), n: p.pageNumber }));
  } catch (e) {
    if (!alive(s) || sessionLost(e)) return;
    return showProblem(s, e, self);
  }
  clear(s.body);
  if (!pages.length) {
    s.body.appendChild(emptyState("No preview", "The print shop returned no pages to show.", "preview-empty"));
  } else {
    let i = 0;
    const img = h("img", { class: "preview-img", testid: "preview-image", attrs: { draggable: "false", alt: "" } });
    const label = h("span", { class: "preview-page", testid: "preview-page" });
    const prev = button("‹", () => go(i - 1), { testid: "preview-prev", class: "pager" });
    const next = button("›", () => go(i + 1), { testid: "preview-next", class: "pager" });
    prev.setAttribute("aria-label", "Previous page");
    next.setAttribute("aria-label", "Next page");
    const dots = h("span", { class: "dots", attrs: { "aria-hidden": "true" } }, pages.map(() => h("span", { class: "dot" })));
    const go = (to: number): void => {
      if (to < 0 || to >= pages.length) return;
      i = to;
      img.src = pages[i].url;
      img.alt = "Preview of page " + pages[i].n;
      img.setAttribute("data-page", String(pages[i].n));
      label.textContent = "Page " + pages[i].n + " of " + pageCount;
      prev.disabled = i === 0;
      next.disabled = i === pages.length - 1;
      Array.prototype.forEach.call(dots.children, (d: Element, k: number) => d.classList.toggle("on", k === i));
    };
    const stage = h("div", { class: "preview-stage", testid: "preview-stage" }, img);
    // Swipe: a horizontal move of 40 px or more turns the page.
    let x0 = 0;
    let y0 = 0;
    let tracking = false;
    stage.addEventListener("touchstart", (e) => {
      if (e.touches.length !== 1) return;
      tracking = true;
      x0 = e.touches[0].clientX;
      y0 = e.touches[0].clientY;
    }, { passive: true });
    stage.addEventListener("touchend", (e) => {
      if (!tracking) return;
      tracking = false;
      const t = e.changedTouches[0];
      const dx = t.clientX - x0;
      const dy = t.clientY - y0;
      if (Math.abs(dx) >= 40 && Math.abs(dx) > Math.abs(dy)) go(dx < 0 ? i + 1 : i - 1);
    });
    stage.addEventListener("touchcancel", () => (tracking = false));
    s.body.appendChild(
      h(
        "div",
        { class: "preview" },
        h("div", { class: "preview-row" }, prev, stage, next),
        h("div", { class: "preview-meta" }, label, pages.length > 1 ? dots : null),
        h("p", { class: "preview-note", text: "The PREVIEW mark is not printed." }),
      ),
    );
    go(0);
  }
  if (flow.form && flow.form.fields.length) {
    s.footer.appendChild(button("Edit", back, { testid: "edit" }));
  }
  s.footer.appendChild(button("Print options", () => printScreen(flow, self), { kind: "primary", testid: "to-print" }));
}

// ---- print options ----

function uuid(): string {
  const c = window.crypto as Crypto & { randomUUID?: () => string };
  if (c.randomUUID) return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.prototype.map.call(b, (n: number) => (n + 0x100).toString(16).slice(1)).join("");
  return x.slice(0, 8) + "-" + x.slice(8, 12) + "-" + x.slice(12, 16) + "-" + x.slice(16, 20) + "-" + x.slice(20);
}

async function printScreen(flow: Flow, back: () => void): Promise<void> {
  const self = () => printScreen(flow, back);
  const s = screen({ title: "Print", testid: "screen-print", back });
  s.body.appendChild(spinner("Preparing your print file…", "print-loading"));
  let caps: GetPrinterCapabilitiesResponse;
  try {
    const [fin, c] = await Promise.all([
      flow.printFile && flow.draft.state === DraftState.FINALIZED
        ? Promise.resolve(null)
        : customization.finalizeDraft({ draftId: flow.draft.id }, { ...LONG, signal: s.signal }),
      print.getPrinterCapabilities({}, { ...SHORT, signal: s.signal }),
    ]);
    if (fin) {
      flow.printFile = fin.printFile || null;
      if (fin.draft) flow.draft = fin.draft;
    }
    caps = c;
  } catch (e) {
    if (!alive(s) || sessionLost(e)) return;
    if (ConnectError.from(e).code === Code.FailedPrecondition && flow.form && flow.form.fields.length) {
      clear(s.body);
      s.body.appendChild(
        h(
          "div",
          { class: "state state-error", testid: "error" },
          h("div", { class: "state-icon icon-alert", attrs: { "aria-hidden": "true" }, text: "!" }),
          h("h2", { class: "state-title", text: "Some fields need attention" }),
          h("p", { class: "state-text", text: describe(e).message }),
          button("Back to the form", () => formScreen(flow, flow.product, () => productScreen(flow.product.id, () => home())), { kind: "primary", testid: "retry" }),
        ),
      );
      return;
    }
    return showProblem(s, e, self);
  }
  if (!alive(s)) return;
  clear(s.body);
  const cap = caps.capabilities;
  const copiesMax = Math.max(1, (cap && cap.copiesMax) || 1);
  const suggested = (flow.printFile && flow.printFile.suggestedCopies) || 1;
  let copies = Math.min(Math.max(1, suggested), copiesMax);
  let sides = (cap && cap.sidesDefault) || Sides.UNSPECIFIED;
  let color = (cap && cap.colorModeDefault) || ColorMode.UNSPECIFIED;
  const requestId = uuid();

  const value = h("output", { class: "stepper-value", testid: "copies", text: String(copies) });
  const minus = button("−", () => setCopies(copies - 1), { testid: "copies-minus", class: "stepper-btn" });
  const plus = button("+", () => setCopies(copies + 1), { testid: "copies-plus", class: "stepper-btn" });
  minus.setAttribute("aria-label", "Fewer copies");
  plus.setAttribute("aria-label", "More copies");
  const printBtn = button("Print", () => void submit(), { kind: "primary", testid: "print-button" });
  const setCopies = (n: number): void => {
    copies = Math.min(Math.max(1, n), copiesMax);
    value.textContent = String(copies);
    minus.disabled = copies <= 1;
    plus.disabled = copies >= copiesMax;
    printBtn.textContent = copies === 1 ? "Print 1 copy" : "Print " + copies + " copies";
  };

  const segmented = <T extends number>(
    name: string,
    label: string,
    options: T[],
    current: T,
    text: (v: T) => string,
    enumName: (v: T) => string,
    set: (v: T) => void,
  ): HTMLElement => {
    const btns = options.map((o) =>
      h("button", {
        class: "choice choice-small",
        testid: name + "-" + enumName(o),
        attrs: { type: "button", role: "radio", "aria-checked": o === current ? "true" : "false", "data-value": o },
        text: text(o),
        on: {
          click: () => {
            set(o);
            btns.forEach((b) => b.setAttribute("aria-checked", b.getAttribute("data-value") === String(o) ? "true" : "false"));
          },
        },
      }),
    );
    return h("div", { class: "option" }, h("span", { class: "option-label", text: label }), h("div", { class: "choices", testid: name, attrs: { role: "radiogroup" } }, btns));
  };

  const rows: Child[] = [];
  rows.push(
    h(
      "div",
      { class: "option" },
      h("span", { class: "option-label", text: "Copies" }),
      h("div", { class: "stepper" }, minus, value, plus),
      h("span", {
        class: "option-hint",
        text:
          (suggested > 1 ? "Suggested for a quantity of " + flow.draft.quantity + ". " : "") +
          "Up to " + copiesMax + ".",
      }),
    ),
  );
  const sidesSupported = (cap && cap.sidesSupported) || [];
  if (sidesSupported.length > 1) {
    if (sidesSupported.indexOf(sides) < 0) sides = sidesSupported[0];
    rows.push(segmented("sides", "Sides", sidesSupported, sides, sidesLabel, (v) => Sides[v], (v) => (sides = v)));
  }
  const colors = (cap && cap.colorModesSupported) || [];
  if (colors.length > 1) {
    if (colors.indexOf(color) < 0) color = colors[0];
    rows.push(segmented("color", "Colour", colors, color, colorLabel, (v) => ColorMode[v], (v) => (color = v)));
  }
  const warn =
    caps.acceptingJobs === false
      ? banner("warn", "The printer is not accepting jobs right now" + (caps.printerStateMessage ? ": " + caps.printerStateMessage : "."), "printer-warning")
      : null;
  s.body.appendChild(
    h(
      "div",
      { class: "print" },
      warn,
      h(
        "div",
        { class: "summary", testid: "print-summary" },
        h("strong", { text: flow.product.displayName }),
        h("span", {
          text:
            [
              flow.printFile && flow.printFile.pageCount ? flow.printFile.pageCount + (flow.printFile.pageCount === 1 ? " page" : " pages") : "",
              formatPrice(flow.draft.price || flow.product.price),
            ]
              .filter(Boolean)
              .join(" · "),
        }),
        h("span", { class: "muted", text: "On " + (caps.deviceDisplayName || caps.deviceId || "this printer") }),
      ),
      h("div", { class: "options" }, rows),
    ),
  );
  const footStatus = h("div", { class: "footer-status" });
  s.footer.appendChild(footStatus);
  s.footer.appendChild(printBtn);
  setCopies(copies);

  const submit = async (): Promise<void> => {
    printBtn.disabled = true;
    printBtn.textContent = "Sending…";
    clear(footStatus);
    try {
      const res = await print.submitJob(
        {
          document: { case: "draftId", value: flow.draft.id },
          copies,
          sides: sidesSupported.length > 1 ? sides : Sides.UNSPECIFIED,
          colorMode: colors.length > 1 ? color : ColorMode.UNSPECIFIED,
          requestId,
        },
        { ...LONG, signal: s.signal },
      );
      if (!alive(s)) return;
      jobScreen(flow, res);
    } catch (e) {
      if (!alive(s) || sessionLost(e)) return;
      setCopies(copies);
      printBtn.disabled = false;
      printBtn.textContent = "Try again";
      const p = describe(e);
      footStatus.appendChild(banner("error", p.title + ": " + p.message, "print-error"));
    }
  };
}

// ---- job progress ----

function jobScreen(flow: Flow, submitted: SubmitJobResponse): void {
  const s = screen({ title: "Printing", testid: "screen-job" });
  const job0 = submitted.job as Job;
  const icon = h("div", { class: "state-icon", attrs: { "aria-hidden": "true" } });
  const state = h("h2", { class: "state-title", testid: "job-state", attrs: { "aria-live": "polite" } });
  const message = h("p", { class: "state-text", testid: "job-message" });
  const progress = h("p", { class: "muted", testid: "job-progress" });
  const note = h("div", { class: "job-note" });
  s.body.appendChild(h("div", { class: "state state-job", testid: "job" }, icon, state, message, progress, note));
  if (submitted.pullDelivery && submitted.pullDelivery.documentUrl) {
    // The URL is a one-time capability for the printer's own API (handing it over is out of
    // scope here); it is kept out of sight and made available to the device integration.
    const exp = submitted.pullDelivery.expireTime ? timeOfDay(timestampDate(submitted.pullDelivery.expireTime)) : "";
    const pd = h("p", {
      class: "pull",
      testid: "pull-delivery",
      attrs: { "data-url": submitted.pullDelivery.documentUrl },
      text: "The printer fetches the file itself" + (exp ? " (link valid until " + exp + ")." : "."),
    });
    note.appendChild(pd);
  }
  const cancel: HTMLButtonElement = button("Cancel printing", async () => {
    cancel.disabled = true;
    try {
      const res = await print.cancelJob({ jobId: job0.id }, SHORT);
      if (res.job) show(res.job);
    } catch (e) {
      if (!alive(s) || sessionLost(e)) return;
      cancel.disabled = false;
    }
  }, { kind: "danger", testid: "cancel-job" });

  let last: Job = job0;
  const show = (job: Job): void => {
    if (!alive(s)) return;
    last = job;
    const name = jobStateName(job.state);
    state.textContent = jobStateLabel(job.state);
    state.setAttribute("data-state", name);
    s.body.firstElementChild && (s.body.firstElementChild as HTMLElement).setAttribute("data-state", name);
    const msg = job.stateMessage || "";
    message.textContent = msg.trim().toLowerCase() === jobStateLabel(job.state).toLowerCase() ? "" : msg;
    const total = job.pageCount * job.copies;
    progress.textContent =
      job.pagesPrinted !== undefined && job.pagesPrinted > 0
        ? "Pages printed: " + job.pagesPrinted + (total ? " of " + total : "")
        : "";
    icon.className =
      "state-icon " +
      (job.state === JobState.COMPLETED ? "icon-ok" : isTerminal(job.state) ? "icon-alert" : job.state === JobState.STOPPED || job.state === JobState.HELD ? "icon-warn" : "icon-busy");
    icon.textContent = job.state === JobState.COMPLETED ? "✓" : isTerminal(job.state) ? "!" : "";
    if (isTerminal(job.state)) {
      cancel.remove();
      if (job.state === JobState.COMPLETED) {
        window.setTimeout(() => alive(s) && doneScreen(flow, job), 900);
      } else {
        clear(s.footer);
        s.footer.appendChild(button("Start over", () => home(), { testid: "home" }));
        s.footer.appendChild(
          button("Try again", () => printScreen(flow, () => previewScreen(flow, () => productScreen(flow.product.id, () => home()))), {
            kind: "primary",
            testid: "retry",
          }),
        );
      }
    }
  };
  show(job0);
  if (!isTerminal(job0.state)) s.footer.appendChild(cancel);

  const watch = async (): Promise<void> => {
    try {
      for await (const m of print.watchJob({ jobId: job0.id }, { signal: s.signal })) {
        if (m.job) show(m.job);
        if (m.job && isTerminal(m.job.state)) return;
      }
      if (!isTerminal(last.state)) throw new ConnectError("The job stream ended early.", Code.Unavailable);
    } catch (e) {
      if (!alive(s) || sessionLost(e)) return;
      const again = button("Try again", () => {
        lost.remove();
        void watch();
      }, { testid: "retry" });
      const lost = banner("error", "Lost touch with the printer. The job may still print.", "job-error", again);
      note.appendChild(lost);
    }
  };
  void watch();
}

function doneScreen(flow: Flow, job: Job): void {
  const s = screen({ title: "Done", testid: "screen-done" });
  s.body.appendChild(
    h(
      "div",
      { class: "state state-done", testid: "done" },
      h("div", { class: "state-icon icon-ok", attrs: { "aria-hidden": "true" }, text: "✓" }),
      h("h2", { class: "state-title", testid: "done-title", text: "Your print is ready" }),
      h("p", { class: "state-text", testid: "done-message", text: "Collect your " + flow.product.displayName + " from the printer's output tray." }),
      job.stateMessage && !/^printed\.?$/i.test(job.stateMessage.trim())
        ? h("p", { class: "muted", testid: "job-message", text: job.stateMessage })
        : null,
      h("p", { class: "muted", text: "Tap Finish when you are done: everything you made here is deleted." }),
    ),
  );
  s.footer.appendChild(button("Print something else", () => home(), { testid: "print-another" }));
  s.footer.appendChild(button("Finish", () => exit(), { kind: "primary", testid: "finish" }));
}

// ---- storefront login (optional) ----

function loginScreen(): void {
  const s = screen({ title: "Log in", testid: "screen-login", back: () => home() });
  const user = h("input", { testid: "login-username", attrs: { id: "login-user", type: "text", autocomplete: "off", autocapitalize: "off", spellcheck: "false", maxlength: 256 } });
  const pass = h("input", { testid: "login-password", attrs: { id: "login-pass", type: "password", autocomplete: "off", maxlength: 1024 } });
  const remember = h("input", { testid: "login-remember", attrs: { id: "login-remember", type: "checkbox" } });
  const msg = h("div", { class: "login-msg", testid: "login-message" });
  s.body.appendChild(
    h(
      "form",
      { class: "form login", attrs: { novalidate: true, autocomplete: "off" }, on: { submit: (e) => { e.preventDefault(); void submit(); } } },
      h("p", { class: "lead-text", text: "Log in to your print shop account for your own prices and saved details. This is optional: you can print without an account." }),
      msg,
      h("div", { class: "field" }, h("label", { class: "field-label", attrs: { for: "login-user" }, text: "User name or e-mail" }), user),
      h("div", { class: "field" }, h("label", { class: "field-label", attrs: { for: "login-pass" }, text: "Password" }), pass),
      app.ssoAvailable
        ? h("label", { class: "check", attrs: { for: "login-remember" } }, remember, h("span", { text: "Remember me on this printer's sign-in" }))
        : null,
    ),
  );
  const submitBtn = button("Log in", () => void submit(), { kind: "primary", testid: "login-submit" });
  s.footer.appendChild(button("Continue without logging in", () => home(), { testid: "login-skip" }));
  s.footer.appendChild(submitBtn);

  const submit = async (): Promise<void> => {
    clear(msg);
    if (!user.value.trim() || !pass.value) {
      msg.appendChild(banner("error", "Enter your user name and password.", "login-error"));
      return;
    }
    submitBtn.disabled = true;
    submitBtn.textContent = "Logging in…";
    try {
      const res = await session.login(
        { username: user.value.trim(), password: pass.value, remember: app.ssoAvailable && remember.checked },
        { ...SHORT, signal: s.signal },
      );
      if (!alive(s)) return;
      if (res.sessionToken) setToken(res.sessionToken);
      app.user = res.displayName || user.value.trim();
      pass.value = "";
      app.lists.clear();
      app.categories = null;
      home();
    } catch (e) {
      if (!alive(s)) return;
      pass.value = "";
      submitBtn.disabled = false;
      submitBtn.textContent = "Log in";
      const err = ConnectError.from(e);
      let title: string;
      let text: string;
      switch (err.code) {
        case Code.Unimplemented:
          title = "Logging in is not available on this printer";
          text = sentence(err.rawMessage) + "You can still browse and print without an account.";
          break;
        case Code.PermissionDenied:
          title = "That did not work";
          text = "The user name or password is not right. Please try again.";
          break;
        case Code.Unauthenticated:
          sessionLost(e);
          return;
        default: {
          const p = describe(e);
          title = p.title;
          text = p.message;
        }
      }
      msg.appendChild(
        h(
          "div",
          { class: "banner banner-" + (err.code === Code.Unimplemented ? "info" : "error"), testid: "login-error", attrs: { role: "alert" } },
          h("span", { class: "banner-text" }, h("strong", { text: title + ". " }), text),
        ),
      );
    }
  };
}

/** A message as a sentence followed by a space ("" stays ""). */
function sentence(m: string): string {
  const t = (m || "").trim();
  if (!t) return "";
  return /[.!?…]$/.test(t) ? t + " " : t + ". ";
}

// ---- go ----

void start();
