// Talking to the gateway like any OpenAI client: JSON calls, the SSE chat stream, and
// errors turned into sentences a person can act on.

/** A failed call, with the fields of OpenAI's error envelope. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, param = null, retryAfter = null,
                         midStream = false } = {}) {
    super(message);
    this.name = "ApiError";
    Object.assign(this, { status, code, param, retryAfter, midStream });
  }
}

export class Api {
  constructor() {
    this.key = "";
  }

  /** The response of a successful call; an `ApiError` for any other outcome. */
  async send(path, init = {}) {
    const headers = { ...init.headers };
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    let response;
    try {
      response = await fetch(path, { ...init, headers });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError("The gateway could not be reached. Is it running?",
                         { code: "network_error" });
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async json(path, init = {}) {
    return (await this.send(path, init)).json();
  }

  /** The chunks of a streamed chat completion; an error event mid-stream throws. */
  async *chat(body, signal) {
    const response = await this.send("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    for await (const data of sseData(response.body)) {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) {
        throw new ApiError(chunk.error.message, { code: chunk.error.code, midStream: true });
      }
      yield chunk;
    }
    throw new ApiError("the connection closed before the answer was complete",
                       { code: "stream_truncated", midStream: true });
  }
}

async function errorFrom(response) {
  let info = {};
  try {
    info = (await response.json()).error ?? {};
  } catch {
    // Not our JSON envelope (a proxy's error page): the status line still says something.
  }
  return new ApiError(info.message || `${response.status} ${response.statusText}`.trim(), {
    status: response.status,
    code: info.code ?? null,
    param: info.param ?? null,
    retryAfter: response.headers.get("Retry-After"),
  });
}

// An event ends at a blank line; lines end in CRLF, LF or CR (sse-starlette sends CRLF).
const EVENT_END = /\r\n\r\n|\n\n|\r\r/;

/** The `data` of each server-sent event in `stream` (comments such as pings skipped). */
async function* sseData(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = EVENT_END.exec(buffer)) !== null) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        const data = block
          .split(/\r\n|\r|\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) yield data;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** What went wrong, in words, with what to do about it where there is something to do. */
export function explain(error, { hasKey = false } = {}) {
  if (!(error instanceof ApiError)) return `Something went wrong in this page: ${error.message}`;
  const said = sentence(error.message);
  if (error.midStream) return `The answer stopped part-way: ${said}`;
  switch (error.code) {
    case "invalid_api_key":
      return hasKey
        ? "The API key was not accepted. Check it and enter it again."
        : "This server needs an API key. Enter it in the API key field at the top.";
    case "engine_unavailable":
      return `The language model engine is not reachable, so nothing can be answered now. ${said}`;
    case "engine_timeout":
      return `The language model engine took too long to answer. Try again. ${said}`;
    case "store_unavailable":
      return `The document store is not available. ${said}`;
    default:
      break;
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again soon.";
    return `The server is busy or this key's rate limit is reached.${wait} ${said}`;
  }
  if (error.status === 0) return said;
  return `The server refused this (HTTP ${error.status}): ${said}`;
}

function sentence(text) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
