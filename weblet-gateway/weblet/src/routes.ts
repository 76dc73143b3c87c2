// The screens the weblet can show, as data, and the one navigator that stacks them.
import type { Category, Product } from "./gen/podconnect/v1/catalog_pb";
import type { Job, SubmitJobResponse } from "./gen/podconnect/v1/print_pb";
import { Navigator } from "./nav";
import type { Flow } from "./state";

export type Route =
  | { name: "start" }
  | { name: "exit" }
  | { name: "ended"; err: unknown }
  | { name: "home" }
  | { name: "login" }
  | { name: "category"; category: Category }
  | { name: "product"; productId: string }
  /** `flow` is null until the form screen has made the draft; then it stays for Back. */
  | { name: "form"; product: Product; flow: Flow | null }
  | { name: "preview"; flow: Flow }
  | { name: "print"; flow: Flow }
  | { name: "job"; flow: Flow; submitted: SubmitJobResponse }
  | { name: "done"; flow: Flow; job: Job };

export const nav = new Navigator<Route>();
