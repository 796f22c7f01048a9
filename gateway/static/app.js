// The playground page: pick what answers (a model or a collection), ask, watch the answer
// stream in with its sources; upload documents. It uses only the public API, like any client.

import { Api, explain } from "./api.js";
import { DocumentsPanel } from "./documents.js";
import { Turn } from "./turn.js";

const KEY_STORAGE = "ragserve.apiKey"; // per tab, gone when it closes

const $ = (id) => document.getElementById(id);
const els = {
  notice: $("notice"),
  keyForm: $("key-form"),
  apiKey: $("api-key"),
  conversation: $("conversation"),
  emptyHint: $("empty-hint"),
  askForm: $("ask-form"),
  target: $("target"),
  question: $("question"),
  systemPrompt: $("system-prompt"),
  temperature: $("temperature"),
  maxTokens: $("max-tokens"),
  askButton: $("ask-button"),
  stopButton: $("stop-button"),
  newChatButton: $("new-chat-button"),
  turnTemplate: $("turn-template"),
};

const api = new Api();
const documents = new DocumentsPanel(
  api,
  {
    form: $("upload-form"),
    collection: $("doc-collection"),
    suggestions: $("collection-names"),
    file: $("doc-file"),
    button: $("upload-button"),
    status: $("documents-status"),
    list: $("document-list"),
  },
  () => loadTargets(),
);

let embeddingModel = null; // listed by /v1/models, but it cannot chat
let defaults = { model: null, collection: null }; // the server's default target
let history = []; // the finished turns, sent with each question for follow-ups
let running = null; // the AbortController of the answer being streamed

function notice(message) {
  els.notice.textContent = message;
  els.notice.hidden = !message;
}

function explainError(error) {
  return explain(error, { hasKey: Boolean(api.key) });
}

async function start() {
  let config;
  try {
    config = await api.json("/playground/config.json");
  } catch (error) {
    notice(`The playground could not start. ${explainError(error)}`);
    return;
  }
  embeddingModel = config.embedding_model;
  defaults = { model: config.default_model ?? null, collection: config.default_collection ?? null };
  if (config.auth_required) {
    els.keyForm.hidden = false;
    api.key = sessionStorage.getItem(KEY_STORAGE) ?? "";
    els.apiKey.value = api.key;
    if (!api.key) {
      notice("This server needs an API key. Enter it in the API key field at the top.");
      els.apiKey.focus();
      return;
    }
  }
  await loadTargets();
  await documents.refresh();
}

/** Fill the "Answer from" list: the chat models, then the collections to search. */
async function loadTargets() {
  const [models, collections] = await Promise.allSettled([
    api.json("/v1/models"),
    api.json("/v1/collections"),
  ]);
  if (models.status === "rejected") {
    showTargets([], []);
    notice(`Could not load the models. ${explainError(models.reason)}`);
    return;
  }
  notice("");
  const chatModels = models.value.data.map((m) => m.id).filter((id) => id !== embeddingModel);
  const found = collections.status === "fulfilled" ? collections.value.data : [];
  showTargets(chatModels, found);
  documents.suggest(found);
}

function showTargets(chatModels, collections) {
  const previous = els.target.value;
  const groups = [];
  if (chatModels.length) {
    groups.push(optionGroup("Models", chatModels.map((id) => [`model:${id}`, id])));
  }
  if (chatModels.length && collections.length) {
    groups.push(optionGroup("Search a collection", collections.map((c) => [
      `collection:${c.name}`,
      `${c.name} (${c.points} passage${c.points === 1 ? "" : "s"})`,
    ])));
  }
  els.target.replaceChildren(...groups);
  els.target.dataset.chatModel = chatModels[0] ?? "";
  const values = [...els.target.options].map((option) => option.value);
  // Keep the user's pick; else the server's default (the `docs` alias, or its collection);
  // else search the first collection (what the page is for).
  const preferred = [
    previous,
    defaults.model && `model:${defaults.model}`,
    defaults.collection && `collection:${defaults.collection}`,
  ];
  els.target.value = preferred.find((v) => v && values.includes(v))
    ?? values.find((v) => v.startsWith("collection:")) ?? values[0] ?? "";
  els.target.disabled = values.length === 0;
  updateButtons();
}

function optionGroup(label, entries) {
  const group = document.createElement("optgroup");
  group.label = label;
  for (const [value, text] of entries) group.append(new Option(text, value));
  return group;
}

/** What the picked entry means for the request: a model, maybe a collection to search. */
function selectedTarget() {
  const [kind, ...rest] = els.target.value.split(":");
  const name = rest.join(":");
  if (kind === "model") return { model: name };
  if (kind === "collection") return { model: els.target.dataset.chatModel, collection: name };
  return null;
}

function chatRequest(target, question) {
  const messages = [];
  const system = els.systemPrompt.value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...history, { role: "user", content: question });
  const body = {
    model: target.model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (target.collection) body.rag = { collection: target.collection };
  const maxTokens = els.maxTokens.valueAsNumber;
  if (Number.isFinite(maxTokens)) body.max_tokens = maxTokens;
  const temperature = els.temperature.valueAsNumber;
  if (Number.isFinite(temperature)) body.temperature = temperature;
  return body;
}

async function ask() {
  const question = els.question.value.trim();
  const target = selectedTarget();
  if (!question || !target || running) return;
  const turn = new Turn(els.turnTemplate, question);
  els.conversation.append(turn.root);
  els.emptyHint.hidden = true;
  els.question.value = "";
  turn.root.scrollIntoView({ block: "nearest" });
  running = new AbortController();
  updateButtons();
  try {
    for await (const chunk of api.chat(chatRequest(target, question), running.signal)) {
      turn.add(chunk);
    }
    turn.finish();
    history.push({ role: "user", content: question }, { role: "assistant", content: turn.text });
  } catch (error) {
    if (error.name === "AbortError") turn.stop();
    else turn.fail(explainError(error));
  } finally {
    running = null;
    updateButtons();
  }
}

function updateButtons() {
  els.askButton.disabled = Boolean(running) || els.target.disabled;
  els.stopButton.disabled = !running;
}

els.askForm.addEventListener("submit", (event) => {
  event.preventDefault();
  ask();
});

els.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!running) els.askForm.requestSubmit();
  } else if (event.key === "Escape" && running) {
    running.abort();
  }
});

els.stopButton.addEventListener("click", () => running?.abort());

els.newChatButton.addEventListener("click", () => {
  running?.abort();
  history = [];
  els.conversation.replaceChildren();
  els.emptyHint.hidden = false;
  els.question.focus();
});

els.keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  api.key = els.apiKey.value.trim();
  sessionStorage.setItem(KEY_STORAGE, api.key);
  notice("");
  await loadTargets();
  await documents.refresh();
});

start();
