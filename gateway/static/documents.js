// The documents panel: upload a file into a collection, list what it holds, delete.
// Everything goes through the documents API (/v1/documents) with the page's key.

import { explain } from "./api.js";

export class DocumentsPanel {
  constructor(api, { form, collection, suggestions, file, button, status, list }, onChange) {
    Object.assign(this, { api, collection, suggestions, file, button, status, list, onChange });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.upload();
    });
    collection.addEventListener("change", () => this.refresh());
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-doc-id]");
      if (button) this.remove(button.dataset.docId);
    });
  }

  /** The collection typed in, or "" for the server's default one. */
  target() {
    return this.collection.value.trim();
  }

  /** A documents API URL for the chosen collection, with `extra` query parameters. */
  url(extra = {}) {
    const params = new URLSearchParams(extra);
    if (this.target()) params.set("collection", this.target());
    const query = params.toString();
    return query ? `/v1/documents?${query}` : "/v1/documents";
  }

  say(message, { error = false } = {}) {
    this.status.textContent = message;
    this.status.classList.toggle("error", error);
  }

  /** List the collection's documents (the status line tells only of failures here). */
  async refresh() {
    let documents;
    try {
      documents = (await this.api.json(this.url())).data;
    } catch (error) {
      if (error.code === "collection_not_found") {
        this.list.replaceChildren(emptyItem("No such collection yet: an upload creates it."));
      } else {
        this.list.replaceChildren();
        this.say(`Could not list the documents. ${this.explain(error)}`, { error: true });
      }
      return;
    }
    this.list.replaceChildren(
      ...(documents.length
        ? documents.map((doc) => documentItem(doc))
        : [emptyItem("No documents in this collection yet.")]),
    );
  }

  async upload() {
    const file = this.file.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    if (this.target()) form.append("collection", this.target());
    this.button.disabled = true;
    this.say(`Uploading ${file.name}…`);
    try {
      const result = await this.api.json("/v1/documents", { method: "POST", body: form });
      const verb = { added: "Added", updated: "Updated", unchanged: "Already up to date:" };
      const passages = `${result.chunks} passage${result.chunks === 1 ? "" : "s"}`;
      const warnings = result.warnings.length ? ` Note: ${result.warnings.join(" ")}` : "";
      this.say(`${verb[result.status]} ${file.name} in “${result.collection}” (${passages}).${warnings}`);
      this.file.value = "";
      await this.changed();
    } catch (error) {
      this.say(`Upload failed. ${this.explain(error)}`, { error: true });
    } finally {
      this.button.disabled = false;
    }
  }

  async remove(docId) {
    if (!window.confirm(`Delete ${docId} from the collection?`)) return;
    try {
      const result = await this.api.json(this.url({ doc_id: docId }), { method: "DELETE" });
      this.say(result.deleted ? `Deleted ${docId}.` : `${docId} was already gone.`);
      await this.changed();
    } catch (error) {
      this.say(`Could not delete ${docId}. ${this.explain(error)}`, { error: true });
    }
  }

  async changed() {
    await this.refresh();
    this.onChange();
  }

  /** The collections the key can see, offered as suggestions. */
  suggest(collections) {
    this.suggestions.replaceChildren(
      ...collections.map((collection) => {
        const option = document.createElement("option");
        option.value = collection.name;
        return option;
      }),
    );
  }

  explain(error) {
    return explain(error, { hasKey: Boolean(this.api.key) });
  }
}

function documentItem(doc) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "document-name";
  name.textContent = doc.id;
  name.title = doc.id;
  const chunks = document.createElement("span");
  chunks.className = "document-chunks";
  chunks.textContent = `${doc.chunks} passage${doc.chunks === 1 ? "" : "s"}`;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.dataset.docId = doc.id;
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${doc.id}`);
  item.append(name, chunks, remove);
  return item;
}

function emptyItem(text) {
  const item = document.createElement("li");
  item.className = "empty";
  item.textContent = text;
  return item;
}
