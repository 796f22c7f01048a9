"""The playground in headless Chromium against a real gateway, embedder, store and vLLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from gateway.auth import digest
from tests.support.processes import free_port, gateway_process, python_module_process

pytestmark = pytest.mark.engine

# The 135M model rarely cites unasked; asked which passage, it answers with "[1]".
QUESTION = "Which passage explains error HX-7731? Answer with its number in brackets, like [1]."
ANSWER_TIMEOUT_MS = 300_000  # generous: the CI machine is small and shared

# Every render of the first answer: its length and how many sources were shown by then.
RECORD_RENDERS = """
window.answerRenders = [];
new MutationObserver(() => {
  const turn = document.querySelector(".turn");
  const text = turn?.querySelector(".answer")?.textContent ?? "";
  const last = window.answerRenders.at(-1);
  if (text && turn.dataset.state === "streaming" && text.length !== last?.length) {
    const sources = turn.querySelectorAll(".source").length;
    window.answerRenders.push({length: text.length, sources});
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def open_page(browser: Browser, url: str, init_script: str = "") -> tuple[Page, list[str]]:
    """The page at ``url``, and a list that collects its script errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    if init_script:
        page.add_init_script(init_script)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs every 4xx fetch; the page handles those and says so in words.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(url)
    return page, problems


def test_a_question_streams_with_sources_and_a_citation_opens_its_source(
    browser: Browser, gateway_url: str, artifacts_dir: Path
) -> None:
    page, problems = open_page(browser, gateway_url, RECORD_RENDERS)
    expect(page.locator("#target")).to_be_enabled(timeout=60_000)
    page.select_option("#target", "model:docs")
    page.locator(".options summary").click()
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "24")
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")  # the keyboard asks

    turn = page.locator(".turn").first
    expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
    renders: list[dict[str, Any]] = page.evaluate("window.answerRenders")
    final_length = len(turn.locator(".answer").inner_text())
    assert len(renders) >= 2, renders  # the text grew token by token on screen
    assert renders[0]["length"] < final_length
    assert renders[0]["sources"] >= 1  # the sources were beside the very first words
    sources = turn.locator("li.source")
    expect(sources.filter(has_text="HX-7731: clock skew")).not_to_have_count(0)
    expect(turn.locator(".timings")).to_contain_text("first token")
    expect(turn.locator(".timings")).to_contain_text("total")

    markers = turn.locator(".answer a.cite")
    if markers.count():  # the model cited: follow its first marker
        number = markers.first.get_attribute("data-source")
        markers.first.click()
    else:  # no marker this time: the source cards are links too
        number = sources.first.get_attribute("data-source")
        sources.first.locator("button.source-head").click()
    opened = turn.locator(f"li.source[data-source='{number}']")
    expect(opened).to_contain_class("selected expanded")
    expect(opened.locator("button.source-head")).to_have_attribute("aria-expanded", "true")
    expect(opened.locator("button.source-head")).to_be_focused()

    page.screenshot(path=str(artifacts_dir / "playground.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not problems, problems
    page.close()


def test_a_document_uploaded_through_the_page_is_listed_then_deleted(
    browser: Browser, gateway_url: str, tmp_path: Path
) -> None:
    collection = "playground-upload"
    note = tmp_path / "kestrel.md"
    note.write_text("# Kestrel relay\n\nThe Kestrel relay forwards readings every 15 seconds.\n")
    page, problems = open_page(browser, gateway_url)
    try:
        expect(page.locator("#target")).to_be_enabled(timeout=60_000)
        page.fill("#doc-collection", collection)
        page.set_input_files("#doc-file", str(note))
        page.click("#upload-button")
        status = page.locator("#documents-status")
        expect(status).to_contain_text(f"Added kestrel.md in “{collection}”", timeout=120_000)
        item = page.locator("#document-list li", has_text="kestrel.md")
        expect(item).to_contain_text("1 passage")
        # The new collection can be searched from the picker straight away.
        expect(page.locator(f"#target option[value='collection:{collection}']")).to_have_count(1)

        page.once("dialog", lambda dialog: dialog.accept())
        item.get_by_role("button", name="Delete").click()
        expect(status).to_contain_text("Deleted", timeout=60_000)
        expect(item).to_have_count(0)
        expect(page.locator("#document-list")).to_contain_text("No documents")
        assert not problems, problems
    finally:
        page.close()
        httpx.delete(f"{gateway_url}/v1/collections/{collection}", timeout=30)


GOOD_KEY = "playground-secret"


def test_key_engine_and_stream_errors_are_told_in_words(browser: Browser, artifacts_dir: Path
                                                        ) -> None:  # fmt: skip
    """Keys configured; the engine first absent, then a scripted one that fails mid-stream."""
    engine_port = free_port()
    env = {
        "RAGSERVE_ENGINE_URLS": f"http://127.0.0.1:{engine_port}",
        "RAGSERVE_API_KEYS": json.dumps([{"name": "tester", "sha256": digest(GOOD_KEY)}]),
        # No breaker and no probes: the engine is reachable as soon as it is started below.
        "RAGSERVE_ENGINE_FAILURE_THRESHOLD": "1000",
        "RAGSERVE_ENGINE_HEALTH_INTERVAL_S": "0",
    }
    with gateway_process(env, artifacts_dir / "gateway-playground-errors.log") as url:
        page, _ = open_page(browser, url)
        notice = page.locator("#notice")
        expect(page.locator("#api-key")).to_be_visible()
        expect(notice).to_have_text(
            "This server needs an API key. Enter it in the API key field at the top."
        )

        page.fill("#api-key", "not-the-key")
        page.press("#api-key", "Enter")
        expect(notice).to_contain_text("The API key was not accepted.", timeout=30_000)

        page.fill("#api-key", GOOD_KEY)
        page.press("#api-key", "Enter")
        expect(notice).to_contain_text("Could not load the models.", timeout=60_000)
        expect(notice).to_contain_text("engine is not reachable")
        expect(page.locator("#ask-button")).to_be_disabled()

        with python_module_process(
            "tests.support.scripted_upstream",
            ["--port", str(engine_port), "--fault", "error"],
            artifacts_dir / "upstream-playground.log",
            f"http://127.0.0.1:{engine_port}/health",
        ):
            page.press("#api-key", "Enter")  # try again, now that an engine answers
            expect(notice).to_be_hidden(timeout=60_000)
            page.select_option("#target", "model:scripted")
            page.fill("#question", "Say three words.")
            page.click("#ask-button")
            turn = page.locator(".turn").first
            expect(turn).to_have_attribute("data-state", "failed", timeout=60_000)
            expect(turn.locator(".answer")).to_have_text("one two three")
            expect(turn.locator(".turn-error")).to_contain_text("The answer stopped part-way:")
        page.close()
