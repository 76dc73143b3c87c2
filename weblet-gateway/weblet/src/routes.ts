// The screens the weblet can show, as data, and the one navigator that stacks them.
import type { Category, Product } from "./gen/podconnect/v1/catalog_pb";
import type { Job, SubmitJobResponse } from "./gen/podconnect/v1/print_pb";
import { Navigator } from "./nav";
import type { Flow } from "./state";
import type { Problem } from "./status";

export type Route =
  | { name: "start" }
  /** `deviceUserAssertion`: the printer launched the weblet again for a (new) device user. */
  | { name: "exit"; deviceUserAssertion?: string }
  | { name: "ended"; err: unknown }
  | { name: "home" }
  /** `problem`: why the person is asked to log in (their saved sign-in could not be used). */
  | { name: "login"; problem?: Problem }
  | { name: "account" }
  | { name: "category"; category: Category }
  | { name: "product"; productId: string }
  /** `flow` is null until the form screen has made the draft; then it stays for Back. */
  | { name: "form"; product: Product; flow: Flow | null }
  | { name: "preview"; flow: Flow }
  | { name: "print"; flow: Flow }
  | { name: "job"; flow: Flow; submitted: SubmitJobResponse }
  | { name: "done"; flow: Flow; job: Job };

export const nav = new Navigator<Route>();
