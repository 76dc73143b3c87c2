// The app's state: one object, in JavaScript memory only (the printer keeps nothing). What a
// session learned is dropped on exit; the device and locale stay for the life of the page.
import { revokeAll } from "./dom";
import type { Category, Product, ProductSummary } from "./gen/podconnect/v1/catalog_pb";
import type { Draft, FieldError, Form, PrintFile } from "./gen/podconnect/v1/customization_pb";

/** The products of one category loaded so far (pages are appended as the person asks for more). */
export interface ListState {
  products: ProductSummary[];
  nextPageToken: string;
  total: number;
}

/** What one session learned; all of it goes on exit. */
export interface SessionState {
  user: string;
  ssoAvailable: boolean;
  categories: Category[] | null;
  lists: Map<string, ListState>;
  thumbs: Map<string, Promise<string>>;
  /** blob: URLs made for this session's images (thumbnails, choice images), revoked on exit. */
  blobs: string[];
}

export interface AppState {
  readonly title: string;
  /** The printer this page runs on (`?device=`), or "weblet". */
  readonly deviceId: string;
  readonly locale: string;
  session: SessionState;
}

/** One product being made: its form, its draft and the values typed so far. */
export interface Flow {
  product: Product;
  form: Form | null;
  draft: Draft;
  values: Record<string, string>;
  printFile: PrintFile | null;
  /** The draft's field errors as the server last reported them. */
  errors: FieldError[];
}

const DEVICE_RE = /^[A-Za-z0-9._-]{1,64}$/;

function freshSession(): SessionState {
  return { user: "", ssoAvailable: false, categories: null, lists: new Map(), thumbs: new Map(), blobs: [] };
}

function deviceFrom(search: string): string {
  const device = new URLSearchParams(search).get("device") || "";
  return DEVICE_RE.test(device) ? device : "weblet";
}

export const app: AppState = {
  title: "Print shop",
  deviceId: deviceFrom(window.location.search),
  locale: navigator.languages?.[0] || navigator.language || "",
  session: freshSession(),
};

/** Forgets everything the session learned and frees its images. */
export function forgetSession(): void {
  revokeAll(app.session.blobs);
  app.session = freshSession();
}

/** A new draft's flow, with its values as the server has them. */
export function newFlow(product: Product, form: Form | null, draft: Draft, errors: FieldError[]): Flow {
  return { product, form, draft, values: Object.assign({}, draft.values), printFile: null, errors };
}

/** Whether the product has a form the person filled in (then Edit and "Back to the form" apply). */
export function hasFields(flow: Flow): boolean {
  return !!flow.form && flow.form.fields.length > 0;
}
