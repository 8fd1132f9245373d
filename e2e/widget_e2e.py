#!/usr/bin/env python3
"""The chat widget end to end, in a real browser, against a running Rapport server.

Sets up an organisation over the REST API (account, email verification, allowed origin, publishable
key, a knowledge-base document), serves a "business website" from a second origin that embeds the
widget with its one-line snippet, and drives headless Chromium through Playwright: open the chat,
ask, watch the answer stream in over the WebSocket with its citation, rate it (and find the rating in
the organisation's analytics), reload and find the conversation again, cut the connection during the
next answer, then an answer over the HTTP fallback (SSE), a page on an origin that is not allowed,
and the /demo page. Run by scripts/e2e, which builds and starts the server; see there.
"""

import argparse
import http.server
import json
import pathlib
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

PASSWORD = "Lighthouse-rye-" + uuid.uuid4().hex[:12]
DOC_TITLE = "Harbour Bakery opening hours"
DOC_TEXT = (
    "Harbour Bakery is open from Monday to Saturday, seven in the morning until three in the afternoon. "
    "On Sundays the bakery stays closed.\n\n"
    "The Lighthouse Rye sourdough is baked every Thursday with seaweed from Kelp Bay.\n\n"
    "Croissants sell out by ten, so come early. Parking is free behind the harbour master's office."
)
QUESTION = "When is the Lighthouse Rye sourdough baked?"
FACT = "every Thursday with seaweed from Kelp Bay"
SECOND_QUESTION = "Is parking free behind the harbour master's office?"
SECOND_FACT = "Parking is free behind the harbour master"
FALLBACK_QUESTION = "Until when is Harbour Bakery open on Saturday afternoon?"
FALLBACK_FACT = "seven in the morning until three in the afternoon"

TIMEOUT_MS = 30_000


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def step(text):
    print(f"  - {text}", flush=True)


# ---------------------------------------------------------------- REST API


class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.token = None

    def call(self, method, path, body=None, expect=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        if expect is not None and status not in (expect if isinstance(expect, tuple) else (expect,)):
            raise Failure(f"{method} {path}: expected {expect}, got {status}: {payload}")
        return status, payload


def mailed_verification_token(mailbox, email, deadline_s=15):
    pattern = re.compile(r"Verification token: ([A-Za-z0-9_-]+)")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for mail in sorted(pathlib.Path(mailbox).glob("*.eml")):
            text = mail.read_text(errors="replace")
            if email in text:
                found = pattern.search(text)
                if found:
                    return found.group(1)
        time.sleep(0.1)
    raise Failure(f"no verification mail for {email} in {mailbox}")


def set_up_organisation(api, mailbox, allowed_origins):
    email = f"owner-{int(time.time() * 1000)}@example.com"
    _, registered = api.call(
        "POST",
        "/auth/register",
        {"email": email, "password": PASSWORD, "org_name": "Harbour Bakery"},
        expect=201,
    )
    org_id = registered["user"]["org"]["id"]
    token = mailed_verification_token(mailbox, email)
    api.call("GET", f"/auth/verify/{token}", expect=200)
    _, tokens = api.call("POST", "/auth/login", {"email": email, "password": PASSWORD}, expect=200)
    api.token = tokens["accessToken"]
    step(f"registered and verified {email} (organisation {org_id})")

    api.call(
        "PUT",
        f"/orgs/{org_id}/config",
        {
            "persona": "Bella from Harbour Bakery",
            "greeting": "Hello! Ask me anything about Harbour Bakery.",
            "allowed_origins": allowed_origins,
        },
        expect=200,
    )
    _, key = api.call("POST", f"/orgs/{org_id}/credentials", {"kind": "publishable"}, expect=201)
    publishable = key["key"]
    check(publishable.startswith("pk_"), f"unexpected key {publishable[:6]}…")
    step(f"allowed origins {allowed_origins}, publishable key {publishable[:8]}…")

    _, kb = api.call(
        "POST", f"/orgs/{org_id}/knowledge-bases", {"title": DOC_TITLE, "text": DOC_TEXT}, expect=201
    )
    end = time.monotonic() + 60
    while True:
        _, entry = api.call("GET", f"/orgs/{org_id}/knowledge-bases/{kb['id']}", expect=200)
        if entry["status"] == "ready":
            break
        check(entry["status"] != "failed", f"document ingestion failed: {entry}")
        check(time.monotonic() < end, f"document not ready after 60 s: {entry}")
        time.sleep(0.1)
    step(f"knowledge base document '{DOC_TITLE}' is ready")
    return org_id, publishable


# ---------------------------------------------------------------- the business website


SITE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harbour Bakery</title></head>
<body style="font-family: Georgia, serif; background: #fbf6ee; margin: 0; padding: 3rem">
<h1>Harbour Bakery</h1>
<p>Fresh bread by the sea since 1962. Questions? Use the chat at the bottom right.</p>
{snippet}
</body></html>
"""


def serve_site():
    """A static site on its own origin; its pages are written once the key is known."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="rapport-site-"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", folder


def write_pages(folder, api_base, key):
    # The one-line embed, exactly as a business would paste it; the second page forces HTTP.
    for name, extra in (("index.html", ""), ("fallback.html", ' data-transport="http"')):
        snippet = f'<script src="{api_base}/widget.js" data-key="{key}"{extra} async></script>'
        (folder / name).write_text(SITE_PAGE.format(snippet=snippet))


# ---------------------------------------------------------------- the browser

# Records every change of the newest assistant message (text, still streaming?) while it arrives.
RECORDER = """() => {
  const root = document.querySelector('.rapport-widget').shadowRoot;
  window.__rapportSeen = [];
  window.__rapportStatus = [];
  const record = () => {
    const status = root.querySelector('.rapport-status').textContent;
    if (status && window.__rapportStatus.at(-1) !== status) window.__rapportStatus.push(status);
    const all = root.querySelectorAll('.rapport-msg-assistant');
    const last = all[all.length - 1];
    if (!last) return;
    const text = last.querySelector('.rapport-text').textContent;
    const streaming = last.classList.contains('rapport-streaming');
    const seen = window.__rapportSeen, prev = seen[seen.length - 1];
    if (!prev || prev.text !== text || prev.streaming !== streaming || prev.count !== all.length)
      seen.push({text, streaming, count: all.length});
  };
  new MutationObserver(record).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""

FINISHED_ANSWER = """([count, fact]) => {
  const root = document.querySelector('.rapport-widget')?.shadowRoot;
  if (!root) return false;
  const all = root.querySelectorAll('.rapport-msg-assistant');
  const last = all[all.length - 1];
  return all.length >= count && !last.classList.contains('rapport-streaming') &&
    last.querySelector('.rapport-text').textContent.includes(fact);
}"""

SNAPSHOT = """() => {
  const root = document.querySelector('.rapport-widget').shadowRoot;
  const texts = (sel) => [...root.querySelectorAll(sel)].map((n) => n.querySelector('.rapport-text').textContent);
  return {
    user: texts('.rapport-msg-user'),
    assistant: texts('.rapport-msg-assistant'),
    status: root.querySelector('.rapport-status').textContent,
  };
}"""


class Browser:
    def __init__(self, playwright, chromium):
        self.browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        self.errors = []
        self.urls = []
        self.sockets = []
        self.current = None

    def page(self):
        context = self.browser.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: self.errors.append(f"{page.url}: console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None,
        )
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        self.current = page
        return context, page

    def explain(self, artifacts):
        """What the widget showed when a step failed: its status line and a screenshot."""
        page = self.current
        if page is None or page.is_closed():
            return ""
        shot = artifacts / "failure.png"
        try:
            page.screenshot(path=str(shot))
            state = page.evaluate(
                """() => {
                  const root = document.querySelector('.rapport-widget')?.shadowRoot;
                  return root ? root.querySelector('.rapport-status').textContent : 'no widget on the page';
                }"""
            )
        except Exception as error:  # the page itself is broken
            return f" (could not inspect the page: {error})"
        return f"\n  widget status: {state!r}\n  screenshot: {shot}"

    def close(self):
        self.browser.close()


def open_chat(page):
    page.locator(".rapport-bubble").click()
    check(page.locator(".rapport-bubble").get_attribute("aria-expanded") == "true", "bubble not expanded")
    page.locator(".rapport-panel[role=dialog]").wait_for(state="visible")
    page.locator(".rapport-msg-assistant").first.wait_for(state="visible")


# Keeps the page's WebSockets reachable, so the test can cut one as a network drop would.
SOCKET_TAP = """(() => {
  const Native = window.WebSocket;
  window.__rapportSockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__rapportSockets.push(this); }
  };
})()"""


def ask_and_watch(page, question, fact, answers_before, drop=False):
    """Asks, waits for the answer and checks it streamed: several growing texts, each a prefix of
    the final one (nothing doubled or lost, also across a dropped connection when `drop`)."""
    page.evaluate(RECORDER)
    page.locator(".rapport-input").fill(question)
    page.locator(".rapport-input").press("Enter")
    if drop:
        page.wait_for_function(
            """() => document.querySelector('.rapport-widget').shadowRoot
                 .querySelector('.rapport-streaming .rapport-text')?.textContent.length > 5"""
        )
        page.evaluate("() => window.__rapportSockets.at(-1).close()")
    page.wait_for_function(FINISHED_ANSWER, arg=[answers_before + 1, fact], timeout=TIMEOUT_MS)
    if drop:
        statuses = page.evaluate("() => window.__rapportStatus")
        check(any("Reconnecting" in s for s in statuses), f"no reconnecting state shown ({statuses})")
    seen = page.evaluate("() => window.__rapportSeen")
    final = seen[-1]["text"]
    mine = [s for s in seen if s["streaming"] and s["count"] == answers_before + 1]
    partial = {s["text"] for s in mine if s["text"]}
    check(len(partial) >= 2 or (mine and partial), f"the answer did not stream (states seen: {seen[:8]}…)")
    wrong = [text for text in partial if not final.startswith(text)]
    check(not wrong, f"a streamed text is not a prefix of the answer: {wrong[:1]} vs {final!r}")
    return len(partial)


def run_browser(args, api, org_id, key, site):
    from playwright.sync_api import sync_playwright

    artifacts = pathlib.Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = Browser(playwright, args.chromium)
        try:
            # 1. The embedded widget over the WebSocket.
            context, page = browser.page()
            page.add_init_script(SOCKET_TAP)
            page.goto(site + "/index.html")
            bubble = page.locator(".rapport-bubble")
            bubble.wait_for(state="visible")
            check(bubble.evaluate("b => b.tagName") == "BUTTON", "the bubble is not a <button>")
            open_chat(page)
            focused = page.evaluate(
                "() => document.querySelector('.rapport-widget').shadowRoot.activeElement?.className || ''"
            )
            check("rapport-input" in focused, f"focus is not on the input after opening ({focused!r})")
            title = page.locator(".rapport-title").text_content()
            check(title == "Bella from Harbour Bakery", f"header shows {title!r}, not the persona")
            greeting = page.locator(".rapport-msg-assistant").first.text_content()
            check("Ask me anything about Harbour Bakery" in greeting, f"greeting not shown: {greeting!r}")
            step("widget loaded cross-origin; bubble opens the dialog, focus on the input, greeting shown")

            streamed = ask_and_watch(page, QUESTION, FACT, answers_before=1)
            answer = page.locator(".rapport-msg-assistant").nth(1)
            citation = answer.locator(".rapport-citation")
            check(citation.count() >= 1, "the answer has no citation")
            check(DOC_TITLE in citation.first.text_content(), f"citation shows {citation.first.text_content()!r}")
            check(
                any(url.endswith("/api/v1/ws") for url in browser.sockets),
                f"no WebSocket to /api/v1/ws was opened ({browser.sockets})",
            )
            step(f"answer streamed over the WebSocket ({streamed} partial texts) with citation '{DOC_TITLE}'")

            up = answer.locator(".rapport-thumb-up")
            up.click()
            page.wait_for_function(
                """() => {
                  const root = document.querySelector('.rapport-widget').shadowRoot;
                  const b = root.querySelectorAll('.rapport-msg-assistant')[1].querySelector('.rapport-thumb-up');
                  return b.getAttribute('aria-pressed') === 'true';
                }"""
            )
            thanks = answer.locator(".rapport-thanks").text_content()
            check("Thanks" in thanks, f"no confirmation after the thumbs-up ({thanks!r})")
            check_feedback_counted(api, org_id)
            answer.scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / "widget.png"))

            page.reload()
            page.locator(".rapport-bubble").wait_for(state="visible")
            if page.locator(".rapport-bubble").get_attribute("aria-expanded") != "true":
                open_chat(page)
            page.wait_for_function(FINISHED_ANSWER, arg=[2, FACT])
            after = page.evaluate(SNAPSHOT)
            check(after["user"] == [QUESTION], f"history after reload: user messages {after['user']}")
            check(len(after["assistant"]) == 2, f"history after reload: {len(after['assistant'])} answers")
            pressed = answer.locator(".rapport-thumb-up").get_attribute("aria-pressed")
            check(pressed == "true", "the recorded rating is not shown after reload")
            ask_and_watch(page, SECOND_QUESTION, SECOND_FACT, answers_before=2, drop=True)
            final = page.evaluate(SNAPSHOT)
            check(final["user"] == [QUESTION, SECOND_QUESTION], f"user messages {final['user']}")
            check(len(final["assistant"]) == 3, f"{len(final['assistant'])} answers, expected 3 (duplicates?)")
            step("after a reload the conversation is back; the next answer survives a dropped connection")
            page.screenshot(path=str(artifacts / "widget-reloaded.png"))
            context.close()

            # 2. The HTTP fallback: POST with Accept: text/event-stream, read as it streams.
            sockets_before = len(browser.sockets)
            context, page = browser.page()
            page.goto(site + "/fallback.html")
            with page.expect_response(lambda r: r.url.endswith("/api/v1/chat/sessions")) as created:
                open_chat(page)
            limit = created.value.json()["max_message_chars"]
            page.locator(".rapport-input").fill("x" * (limit + 1))
            check(page.locator(".rapport-send").is_disabled(), f"a message over {limit} characters can be sent")
            check(
                page.locator(".rapport-input").get_attribute("aria-invalid") == "true",
                "an over-long message is not marked invalid",
            )
            page.locator(".rapport-input").fill("")
            streamed = ask_and_watch(page, FALLBACK_QUESTION, FALLBACK_FACT, answers_before=1)
            check(len(browser.sockets) == sockets_before, "the HTTP fallback opened a WebSocket")
            check(
                page.locator(".rapport-msg-assistant").nth(1).locator(".rapport-citation").count() >= 1,
                "the fallback answer has no citation",
            )
            page.screenshot(path=str(artifacts / "widget-fallback.png"))
            step(f"HTTP fallback: answer streamed over SSE ({streamed} partial texts); input limited to {limit}")
            context.close()

            # 3. The same page from an origin the organisation did not allow: a clear refusal.
            context, page = browser.page()
            page.goto(site.replace("127.0.0.1", "localhost") + "/index.html")
            page.locator(".rapport-bubble").click()
            page.locator(".rapport-status.rapport-error").wait_for(state="visible")
            refusal = page.locator(".rapport-status").text_content()
            check("not enabled for this website" in refusal, f"refused origin shows {refusal!r}")
            page.locator(".rapport-input").fill("Hello?")
            check(page.locator(".rapport-send").is_disabled(), "a refused widget still offers to send")
            step(f"from an origin that is not allowed the widget says so: {refusal!r}")
            context.close()

            # 4. The demo page on the server itself (its origin is allowed too).
            context, page = browser.page()
            page.goto(args.base + "/demo")
            page.locator("#key").fill(key)
            page.locator("button[type=submit]").click()
            page.locator(".rapport-msg-assistant").first.wait_for(state="visible")
            page.locator(".rapport-input").click()
            page.keyboard.press("Escape")
            check(
                page.locator(".rapport-bubble").get_attribute("aria-expanded") == "false",
                "Esc did not close the panel",
            )
            focused = page.evaluate(
                "() => document.querySelector('.rapport-widget').shadowRoot.activeElement?.className || ''"
            )
            check("rapport-bubble" in focused, f"focus did not return to the bubble ({focused!r})")
            page.screenshot(path=str(artifacts / "demo.png"))
            step("/demo loads the widget with the pasted key; Esc closes it and focus returns to the bubble")
            context.close()
        except Exception as error:
            what = str(error) if isinstance(error, Failure) else f"{type(error).__name__}: {error}"
            raise Failure(what + browser.explain(artifacts)) from error
        finally:
            browser.close()

    check(not browser.errors, "errors in the page:\n    " + "\n    ".join(browser.errors))
    leaked = [url for url in browser.urls if key in url]
    check(not leaked, f"the key appeared in a URL: {leaked[:1]}")
    step("no page errors; the key never appeared in a URL")
    return [artifacts / name for name in ("widget.png", "widget-reloaded.png", "widget-fallback.png", "demo.png")]


def check_feedback_counted(api, org_id):
    status, summary = api.call("GET", f"/orgs/{org_id}/analytics")
    check(status == 200, f"GET /orgs/{org_id}/analytics: {status} {summary}")
    feedback = summary.get("feedback")
    check(isinstance(feedback, dict), f"analytics has no feedback section: {summary}")
    check(feedback.get("up") == 1, f"the thumbs-up is not counted: {feedback}")
    step(f"feedback recorded: analytics counts {feedback}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--mailbox", required=True, help="the server's mailbox directory")
    parser.add_argument("--chromium", required=True, help="path of the Chromium executable")
    parser.add_argument("--artifacts", default="target/e2e", help="where screenshots go")
    args = parser.parse_args()
    args.base = args.base.rstrip("/")

    started = time.monotonic()
    api = Api(args.base)
    site_server = None
    try:
        site_server, site, folder = serve_site()
        org_id, key = set_up_organisation(api, args.mailbox, [site, args.base])
        write_pages(folder, args.base, key)
        step(f"business website on {site} embeds the widget from {args.base}")
        shots = run_browser(args, api, org_id, key, site)
    except Failure as failure:
        print(f"\nE2E FAILED: {failure}", file=sys.stderr)
        return 1
    except Exception as error:  # a browser timeout, a refused connection…
        print(f"\nE2E FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if site_server is not None:
            site_server.shutdown()
            site_server.server_close()
    for shot in shots:
        print(f"  screenshot: {shot}")
    print(f"widget e2e passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
