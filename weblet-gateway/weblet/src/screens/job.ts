// After Print: the job's progress as the printer reports it (a stream, with Cancel), and the done
// screen once it completed.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { print, SHORT } from "../api";
import { button, clear, h } from "../dom";
import { isTerminal, jobStateLabel, jobStateName, timeOfDay } from "../format";
import { type Job, JobState, type SubmitJobResponse } from "../gen/podconnect/v1/print_pb";
import { layoutWords } from "../layout";
import { nav } from "../routes";
import { alive, exit, failed, type Screen, screen } from "../screen";
import type { Flow } from "../state";
import { unreachable } from "../status";
import { banner } from "../widgets";

/** How long COMPLETED shows before the done screen. */
const DONE_DELAY_MS = 900;

export function jobScreen(flow: Flow, submitted: SubmitJobResponse): void {
  const s = screen({ title: "Printing", testid: "screen-job" });
  const job0 = submitted.job as Job;
  const icon = h("div", { class: "state-icon", attrs: { "aria-hidden": "true" } });
  const state = h("h2", { class: "state-title", testid: "job-state", attrs: { "aria-live": "polite" } });
  const message = h("p", { class: "state-text", testid: "job-message" });
  const progress = h("p", { class: "muted", testid: "job-progress" });
  const note = h("div", { class: "job-note" });
  const box = h(
    "div",
    { class: "state state-job", testid: "job" },
    icon,
    state,
    message,
    jobLayout(flow, job0, "job-layout"),
    progress,
    note,
  );
  s.body.appendChild(box);
  const pull = submitted.pullDelivery;
  if (pull?.documentUrl) {
    // The URL is a one-time capability for the printer's own API (handing it over is out of
    // scope here); it is kept out of sight and made available to the device integration.
    const exp = pull.expireTime ? timeOfDay(timestampDate(pull.expireTime)) : "";
    note.appendChild(
      h("p", {
        class: "pull",
        testid: "pull-delivery",
        attrs: { "data-url": pull.documentUrl },
        text: `The printer fetches the file itself${exp ? ` (link valid until ${exp}).` : "."}`,
      }),
    );
  }
  const cancel: HTMLButtonElement = button(
    "Cancel printing",
    async () => {
      cancel.disabled = true;
      try {
        const res = await print.cancelJob({ jobId: job0.id }, SHORT);
        if (res.job) show(res.job);
      } catch (e) {
        if (failed(s, e)) cancel.disabled = false;
      }
    },
    { kind: "danger", testid: "cancel-job" },
  );

  let last: Job = job0;
  const show = (job: Job): void => {
    if (!alive(s)) return;
    last = job;
    const name = jobStateName(job.state);
    const label = jobStateLabel(job.state);
    state.textContent = label;
    state.setAttribute("data-state", name);
    box.setAttribute("data-state", name);
    const msg = job.stateMessage || "";
    message.textContent = msg.trim().toLowerCase() === label.toLowerCase() ? "" : msg;
    // Printed sides of sheets, as the printer counts them: 100 cards on 12 two-sided sheets are
    // 24 pages, not 100 × 2.
    const total = job.pagesTotal;
    progress.textContent =
      job.pagesPrinted !== undefined && job.pagesPrinted > 0
        ? `Pages printed: ${job.pagesPrinted}${total ? ` of ${total}` : ""}`
        : "";
    icon.className = `state-icon ${stateIcon(job.state)}`;
    icon.textContent = job.state === JobState.COMPLETED ? "✓" : isTerminal(job.state) ? "!" : "";
    if (!isTerminal(job.state)) return;
    cancel.remove();
    if (job.state === JobState.COMPLETED) {
      window.setTimeout(() => alive(s) && nav.replace({ name: "done", flow, job }), DONE_DELAY_MS);
    } else {
      notPrinted(s);
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
      if (!isTerminal(last.state)) throw unreachable("The job stream ended early.");
    } catch (e) {
      if (!failed(s, e)) return;
      const again = button(
        "Try again",
        () => {
          lost.remove();
          void watch();
        },
        { testid: "retry" },
      );
      const lost = banner("error", "Lost touch with the printer. The job may still print.", "job-error", again);
      note.appendChild(lost);
    }
  };
  void watch();
}

/** "100 × Classic Business Card on 12 A4 sheets, two-sided", or nothing for a job without a layout. */
function jobLayout(flow: Flow, job: Job, testid: string): HTMLElement | null {
  if (!job.layout) return null;
  const words = layoutWords(job.layout, flow.product.displayName || "");
  return h("p", { class: "muted job-layout", testid, text: words.summary });
}

function stateIcon(state: JobState): string {
  if (state === JobState.COMPLETED) return "icon-ok";
  if (isTerminal(state)) return "icon-alert";
  if (state === JobState.STOPPED || state === JobState.HELD) return "icon-warn";
  return "icon-busy";
}

/** The job ended without printing: start over, or back to the print options to try again. */
function notPrinted(s: Screen): void {
  clear(s.footer);
  s.footer.appendChild(button("Start over", () => nav.reset({ name: "home" }), { testid: "home" }));
  s.footer.appendChild(
    button("Try again", () => nav.backTo((r) => r.name === "print"), { kind: "primary", testid: "retry" }),
  );
}

export function doneScreen(flow: Flow, job: Job): void {
  const s = screen({ title: "Done", testid: "screen-done" });
  s.body.appendChild(
    h(
      "div",
      { class: "state state-done", testid: "done" },
      h("div", { class: "state-icon icon-ok", attrs: { "aria-hidden": "true" }, text: "✓" }),
      h("h2", { class: "state-title", testid: "done-title", text: "Your print is ready" }),
      h("p", {
        class: "state-text",
        testid: "done-message",
        text: `Collect your ${flow.product.displayName} from the printer's output tray.`,
      }),
      jobLayout(flow, job, "done-layout"),
      job.stateMessage && !/^printed\.?$/i.test(job.stateMessage.trim())
        ? h("p", { class: "muted", testid: "job-message", text: job.stateMessage })
        : null,
      h("p", { class: "muted", text: "Tap Finish when you are done: everything you made here is deleted." }),
    ),
  );
  s.footer.appendChild(button("Print something else", () => nav.reset({ name: "home" }), { testid: "print-another" }));
  s.footer.appendChild(button("Finish", () => exit(), { kind: "primary", testid: "finish" }));
}
