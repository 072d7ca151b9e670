// Joins: start one (the new node's URL) and watch it. The join's answer is a stream
// of NDJSON lines (steps, progress, done or error), each carrying the migration as it
// is at that moment, so the ring highlights the moving sectors and fills them as they
// are copied. A join started elsewhere (s3lite join) shows up through the polled
// cluster status instead.
import { bytes, el } from "./format.js";
import { streamLines } from "./http.js";

function details(values) {
  return Object.entries(values || {})
    .map(([name, value]) => {
      if (name === "bytes") return `bytes=${bytes(value)}`;
      if (value && typeof value === "object") return `${name}=${JSON.stringify(value)}`;
      return `${name}=${value}`;
    })
    .join(" ");
}

function describe(progress) {
  if (!progress) return "";
  const parts = [];
  if (progress.items_total !== null) parts.push(`${progress.items_done}/${progress.items_total} sectors`);
  if (progress.bytes_total !== null) parts.push(`${bytes(progress.bytes_done)} of ${bytes(progress.bytes_total)}`);
  if (progress.rate) parts.push(`${bytes(progress.rate)}/s`);
  if (progress.eta !== null && !progress.finished) parts.push(`${Math.ceil(progress.eta)} s left`);
  return parts.join(", ");
}

export class JoinView {
  constructor(elements, ring, refresh) {
    Object.assign(this, elements);
    this.ringView = ring;
    this.refresh = refresh;
    this.active = false;
    this.form.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      this.start(this.input.value.trim());
    });
  }

  line(text, className = "") {
    const stamp = new Date().toLocaleTimeString([], { hour12: false });
    this.log.append(el("li", { class: className, text: `${stamp} ${text}` }));
    this.log.scrollTop = this.log.scrollHeight;
  }

  async start(url) {
    this.active = true;
    this.moved = 0;
    this.button.disabled = true;
    this.log.replaceChildren();
    this.panel.removeAttribute("data-joined");
    this.panel.removeAttribute("data-moved");
    this.status.textContent = `joining ${url}...`;
    this.progress.value = 0;
    try {
      await streamLines("join", { node: url }, (message) => this.receive(message));
    } catch (failure) {
      this.line(`failed: ${failure.message}`, "error");
      this.status.textContent = `the join failed: ${failure.message}`;
    } finally {
      this.active = false;
      this.button.disabled = false;
      await this.refresh();
    }
  }

  receive(message) {
    if (message.migration !== undefined) {
      this.ringView.draw(null, message.migration);
      if (message.migration) this.moved = Math.max(this.moved, message.migration.moves.length);
    }
    if (message.progress) this.show(message.progress);
    if (message.event === "step") {
      this.line(`${message.step} ${details(message.details)}`);
    } else if (message.event === "done") {
      const node = message.result.node_id;
      this.line(`done: ${node} joined; ${this.moved} sectors moved to it`);
      this.status.textContent = `${node} joined: ${this.moved} sectors moved to it.`;
      this.panel.setAttribute("data-joined", node);
      this.panel.setAttribute("data-moved", this.moved);
      this.progress.value = 1;
    } else if (message.event === "error") {
      this.line(`failed: ${message.message}`, "error");
      this.status.textContent = `the join failed: ${message.message}`;
    }
  }

  show(progress) {
    this.progress.value = progress.fraction ?? 0;
    const step = progress.step ? `${progress.task}: ${progress.step}` : progress.task;
    this.status.textContent = `${step}. ${describe(progress)}`;
  }

  // The polled cluster status: the last join's progress, when this page is not
  // following a join itself.
  fromStatus(cluster) {
    if (this.active) return;
    const progress = cluster.progress && cluster.progress.join;
    if (progress && !progress.finished) {
      this.show(progress);
    } else if (progress && progress.error) {
      this.status.textContent = `the last join (${progress.task}) failed: ${progress.error}`;
    } else if (progress && !this.panel.hasAttribute("data-joined")) {
      this.status.textContent = `No join in progress; the last one (${progress.task}) is done.`;
    }
  }
}
