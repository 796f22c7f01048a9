// One question and its answer: streamed text whose [n] markers link to the sources shown
// beside it, and the per-stage timings under it. Text is only ever set as text, never HTML.

// The marker forms gateway/rag/citations.py counts: [1], [1, 3], [1-2].
const MARKER = /\[(\d{1,3}(?:\s*[,–-]\s*\d{1,3})*)\]/g;
const NUMBER = /\d{1,3}/g;

// Stage names as people read them; the others (embed, search, total...) read as they are.
const STAGE_LABELS = { engine_first_token: "first token" };

const FINISH_NOTES = {
  length: "stopped at the max tokens limit",
  content_filter: "stopped by a content filter",
};

let turnsCreated = 0;

export class Turn {
  constructor(template, question) {
    this.id = `turn-${++turnsCreated}`;
    this.root = template.content.firstElementChild.cloneNode(true);
    this.root.id = this.id;
    this.part("question").textContent = question;
    this.text = "";
    this.sources = [];
    this.finishReason = null;
    this.timings = null;
    this.usage = null;
    this.root.addEventListener("click", (event) => this.onClick(event));
  }

  part(name) {
    return this.root.querySelector(`.${name}`);
  }

  /** Apply one chunk of the stream. */
  add(chunk) {
    if (chunk.sources) this.showSources(chunk.sources, chunk.rag);
    const choice = chunk.choices?.[0];
    if (choice?.delta?.content) {
      this.text += choice.delta.content;
      this.setState("streaming");
      this.renderText();
    }
    if (choice?.finish_reason) this.finishReason = choice.finish_reason;
    if (chunk.citations) this.markCited(chunk.citations);
    if (chunk.timings) this.timings = chunk.timings;
    if (chunk.usage) this.usage = chunk.usage;
  }

  finish() {
    if (!this.text) this.part("answer").textContent = "(The model returned no text.)";
    this.renderTimings();
    this.setState("done");
  }

  stop() {
    this.renderTimings();
    this.showError("Stopped. The rest of the answer was not generated.");
    this.setState("stopped");
  }

  fail(message) {
    this.renderTimings();
    this.showError(message);
    this.setState("failed");
  }

  setState(state) {
    this.root.dataset.state = state;
    const busy = state === "waiting" || state === "streaming";
    this.part("answer").setAttribute("aria-busy", String(busy));
  }

  showError(message) {
    const error = this.part("turn-error");
    error.textContent = message;
    error.hidden = false;
  }

  /** The answer so far, its [n] markers linked to the sources they name. */
  renderText() {
    const out = document.createDocumentFragment();
    let last = 0;
    for (const marker of this.text.matchAll(MARKER)) {
      out.append(this.text.slice(last, marker.index));
      out.append(this.linkedMarker(marker[0]));
      last = marker.index + marker[0].length;
    }
    out.append(this.text.slice(last));
    this.part("answer").replaceChildren(out);
  }

  linkedMarker(marker) {
    const out = document.createDocumentFragment();
    let last = 0;
    for (const number of marker.matchAll(NUMBER)) {
      out.append(marker.slice(last, number.index));
      const n = Number(number[0]);
      if (n >= 1 && n <= this.sources.length) {
        const link = document.createElement("a");
        link.className = "cite";
        link.href = `#${this.sourceId(n)}`;
        link.dataset.source = String(n);
        link.textContent = number[0];
        link.setAttribute("aria-label", `source ${n}: ${this.sources[n - 1].title || "untitled"}`);
        out.append(link);
      } else if (this.sources.length) {
        // A number no passage carries: the model made it up (the finish chunk lists it in
        // invalid_citations).
        const invented = document.createElement("s");
        invented.className = "cite-invalid";
        invented.title = "no such source";
        invented.textContent = number[0];
        out.append(invented);
      } else {
        out.append(number[0]);
      }
      last = number.index + number[0].length;
    }
    out.append(marker.slice(last));
    return out;
  }

  sourceId(n) {
    return `${this.id}-source-${n}`;
  }

  showSources(sources, rag) {
    this.sources = sources;
    const list = this.part("sources");
    list.replaceChildren(...sources.map((source) => this.sourceItem(source)));
    this.part("rag-info").textContent = ragSummary(sources, rag);
    this.part("rag-info").classList.toggle("warning", Boolean(rag?.degraded));
    if (this.text) this.renderText(); // markers that arrived first can link now
  }

  sourceItem(source) {
    const item = document.createElement("li");
    item.className = "source";
    item.id = this.sourceId(source.id);
    item.dataset.source = String(source.id);

    const textId = `${item.id}-text`;
    const head = document.createElement("button");
    head.type = "button";
    head.className = "source-head";
    head.setAttribute("aria-expanded", "false");
    head.setAttribute("aria-controls", textId);
    head.append(
      span("source-number", `[${source.id}]`),
      span("source-title", source.title || fileName(source.source) || "Untitled passage"),
      span("source-where", whereFrom(source)),
    );

    const text = document.createElement("p");
    text.className = "source-text";
    text.id = textId;
    text.textContent = source.text ?? "";

    item.append(head, text);
    return item;
  }

  onClick(event) {
    const link = event.target.closest("a.cite");
    if (link) {
      event.preventDefault();
      this.openSource(Number(link.dataset.source));
      return;
    }
    const head = event.target.closest("button.source-head");
    if (head) {
      const item = head.closest("li.source");
      const open = head.getAttribute("aria-expanded") !== "true";
      this.select(item, open);
    }
  }

  /** Show source `n` in full, highlighted, and move the keyboard focus to it. */
  openSource(n) {
    const item = this.root.querySelector(`#${CSS.escape(this.sourceId(n))}`);
    if (!item) return;
    this.select(item, true);
    const head = item.querySelector("button.source-head");
    head.focus({ preventScroll: true });
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    item.scrollIntoView({ block: "nearest", behavior: smooth ? "smooth" : "auto" });
  }

  select(item, open) {
    for (const other of this.root.querySelectorAll("li.source.selected")) {
      if (other !== item) other.classList.remove("selected");
    }
    item.classList.toggle("selected", open);
    item.classList.toggle("expanded", open);
    item.querySelector("button.source-head").setAttribute("aria-expanded", String(open));
  }

  markCited(numbers) {
    for (const n of numbers) {
      const item = this.root.querySelector(`#${CSS.escape(this.sourceId(n))}`);
      if (!item) continue;
      item.classList.add("cited");
      item.querySelector(".source-number").title = "cited in the answer";
    }
  }

  renderTimings() {
    const parts = [];
    if (this.timings) {
      for (const [stage, ms] of Object.entries(this.timings)) {
        parts.push(`${STAGE_LABELS[stage] ?? stage.replaceAll("_", " ")} ${duration(ms)}`);
      }
    }
    if (this.usage) parts.push(`${this.usage.completion_tokens} tokens`);
    const note = FINISH_NOTES[this.finishReason];
    if (note) parts.push(note);
    this.part("timings").textContent = parts.length ? `Timings: ${parts.join(" · ")}` : "";
  }
}

function ragSummary(sources, rag) {
  if (!rag) return "Plain chat: no documents were searched.";
  if (rag.degraded) {
    return `Retrieval failed, so this answer does not use the documents (${rag.reason ?? "no reason given"}).`;
  }
  const found = sources.length
    ? `${sources.length} passage${sources.length === 1 ? "" : "s"}`
    : "no passage matched";
  return `${found} from “${rag.collection}”, ${rag.mode} search, ${rag.context_tokens} context tokens.`;
}

function whereFrom(source) {
  const parts = [fileName(source.source)];
  if (source.section && source.section !== source.title) parts.push(source.section);
  if (source.page) parts.push(`page ${source.page}`);
  if (typeof source.score === "number") parts.push(`score ${source.score.toFixed(3)}`);
  return parts.filter(Boolean).join(" · ");
}

function fileName(path) {
  return String(path ?? "").split(/[\\/]/).pop();
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

function duration(ms) {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
