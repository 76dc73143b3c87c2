// The app's state: one object, in JavaScript memory only (the printer keeps nothing). What a
// session learned is dropped on exit; the device and locale stay for the life of the page.
import { revokeAll } from "./dom";
import type { Category, Product, ProductSummary } from "./gen/podconnect/v1/catalog_pb";
import type { Draft, FieldError, Form, PrintFile } from "./gen/podconnect/v1/customization_pb";
import { deviceFrom } from "./launch";

/** The products of one category loaded so far (pages are appended as the person asks for more). */
export interface ListState {
  products: ProductSummary[];
  nextPageToken: string;
  total: number;
}

/** What one session learned; all of it goes on exit. */
export interface SessionState {
  /** The storefront's name for the logged-in account; "" while anonymous. */
  user: string;
  /** A device-user assertion was sent and StartSession accepted it: "remember me" and "Forget
   * me" apply to this session. */
  deviceUser: boolean;
  /** Credentials are stored for the device user, as far as this session knows (StartSession said
   * so, or a login enrolled them; Forget and an unusable entry clear it). */
  ssoStored: boolean;
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

function freshSession(): SessionState {
  return {
    user: "",
    deviceUser: false,
    ssoStored: false,
    categories: null,
    lists: new Map(),
    thumbs: new Map(),
    blobs: [],
  };
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

/** The person logged in or out: prices and assortment may differ per account, so the catalog is
 * loaded again (images stay: they are the same for everyone). */
export function accountChanged(user: string): void {
  app.session.user = user;
  app.session.categories = null;
  app.session.lists.clear();
}

/** A new draft's flow, with its values as the server has them. */
export function newFlow(product: Product, form: Form | null, draft: Draft, errors: FieldError[]): Flow {
  return { product, form, draft, values: Object.assign({}, draft.values), printFile: null, errors };
}

/** Whether the product has a form the person filled in (then Edit and "Back to the form" apply). */
export function hasFields(flow: Flow): boolean {
  return !!flow.form && flow.form.fields.length > 0;
}
