/* Rapport chat widget. Embed with
 *   <script src="https://<host>/widget.js" data-key="pk_..." async></script>
 * Optional: data-api (API base; default: where this script came from), data-title (header text),
 * data-open="true" (start opened), data-transport="http" (no WebSocket: HTTP streaming only).
 * Protocol: protocol/README.md. Server text is only ever set with textContent, never as HTML. */
(() => {
  "use strict";
  const script = document.currentScript || document.querySelector('script[src*="widget.js"][data-key]');
  if (!script) return;
  const cfg = script.dataset;
  const key = (cfg.key || "").trim();
  let api;
  try {
    api = new URL(cfg.api || script.src, location.href);
  } catch (_) {
    return;
  }
  api = (cfg.api ? api.href : api.origin).replace(/\/+$/, "");
  const base = api + "/api/v1/chat/sessions";
  const NS = "rapport:" + hash(api + " " + key);
  if (window.RapportWidget) window.RapportWidget.destroy();

  // Storage: the session outlives the page (localStorage); the stream position is per tab.
  const memory = {};
  const store = (area) => ({
    get(k) {
      try {
        const v = window[area].getItem(NS + k);
        return v === null ? memory[area + k] : JSON.parse(v);
      } catch (_) { return memory[area + k]; }
    },
    set(k, v) {
      memory[area + k] = v;
      try {
        if (v === undefined) window[area].removeItem(NS + k);
        else window[area].setItem(NS + k, JSON.stringify(v));
      } catch (_) { /* blocked or full: memory only */ }
    },
  });
  const local = store("localStorage");
  const tab = store("sessionStorage");

  function hash(s) {
    let h = 5381;
    for (let i = 0; i < s.length; i++) h = ((h * 33) ^ s.charCodeAt(i)) >>> 0;
    return h.toString(36);
  }
  function randomId(prefix, n) {
    const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    return prefix + Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => abc[b % 62]).join("");
  }
  const chars = (s) => [...s].length; // the server counts code points
  const enc = encodeURIComponent;

  // ---- DOM, in a shadow root so the page's styles and ours never mix ----
  const el = (tag, cls, attrs) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k in attrs || {}) k === "text" ? (e.textContent = attrs[k]) : e.setAttribute(k, attrs[k]);
    return e;
  };
  const attr = (e, name, value) => e.setAttribute(name, String(value));
  function icon(d, flip) {
    const ns = "http://www.w3.org/2000/svg";
    const s = document.createElementNS(ns, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    if (flip) s.setAttribute("transform", "rotate(180)");
    s.appendChild(document.createElementNS(ns, "path")).setAttribute("d", d);
    return s;
  }
  const THUMB = "M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1 7.6 6.6C7.2 7 7 7.5 7 8v11a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.3.2-.5.2-.8v-2z";
  const BLUE = "#1d4ed8";
  const CSS = `:host{all:initial}
*{box-sizing:border-box;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.rapport-root{position:fixed;right:20px;bottom:20px;z-index:2147483000;font-size:15px;line-height:1.45;color:#1b1f24}
button{font:inherit;cursor:pointer}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.rapport-bubble{width:60px;height:60px;border-radius:50%;border:0;background:${BLUE};color:#fff;box-shadow:0 4px 14px #0004;display:flex;align-items:center;justify-content:center;margin-left:auto}
.rapport-bubble:hover{background:#1e40af}
.rapport-bubble svg{width:28px;height:28px;fill:currentColor}
.rapport-panel{position:absolute;right:0;bottom:76px;width:370px;max-width:calc(100vw - 40px);height:560px;max-height:calc(100vh - 110px);background:#fff;border-radius:14px;box-shadow:0 10px 40px #0005;display:flex;flex-direction:column;overflow:hidden;animation:rapport-in .15s}
.rapport-panel[hidden]{display:none}
@keyframes rapport-in{from{opacity:0;transform:translateY(8px)}}
.rapport-header{display:flex;align-items:center;gap:6px;padding:12px 12px 12px 16px;background:${BLUE};color:#fff}
.rapport-title{flex:1;font-weight:600;font-size:16px;margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.rapport-icon{background:none;border:0;color:#fff;border-radius:6px;padding:4px 8px;font-size:14px}
.rapport-icon:hover{background:#fff3}
.rapport-status{padding:4px 16px;font-size:13px;background:#fff7d6;color:#5c4500}
.rapport-status.rapport-error{background:#fde8e8;color:#8a1111}
.rapport-status:empty,.rapport-count:empty{display:none}
.rapport-log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px;background:#f6f7f9}
.rapport-msg{max-width:85%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.rapport-msg-user{align-self:flex-end;background:${BLUE};color:#fff;border-bottom-right-radius:4px}
.rapport-pending{opacity:.75}
.rapport-msg-user.rapport-failed{background:#8a1111}
.rapport-msg-assistant{align-self:flex-start;background:#fff;border:1px solid #dde1e6;border-bottom-left-radius:4px}
.rapport-note,.rapport-thanks{font-size:12px;color:#4b5159}
.rapport-msg-user .rapport-note{color:#fff}
.rapport-divider{align-self:center;font-size:12px;color:#4b5159}
.rapport-sources{font-size:13px;color:#3b4149;margin-top:6px;white-space:normal}
.rapport-citation{display:inline-block;margin-right:8px}
.rapport-feedback{display:flex;gap:4px;align-items:center;margin-top:6px;white-space:normal}
.rapport-thumb{border:1px solid #8a9099;background:#fff;border-radius:6px;padding:3px 6px;color:#3b4149;display:flex}
.rapport-thumb svg{width:15px;height:15px;fill:currentColor}
.rapport-thumb[aria-pressed=true]{background:${BLUE};border-color:${BLUE};color:#fff}
.rapport-typing{display:inline-flex;gap:3px;padding:4px 0}
.rapport-typing i{width:6px;height:6px;border-radius:50%;background:#6b7280;animation:rapport-blink 1.2s infinite}
.rapport-typing i:nth-child(2){animation-delay:.2s}.rapport-typing i:nth-child(3){animation-delay:.4s}
@keyframes rapport-blink{0%,80%,100%{opacity:.25}40%{opacity:1}}
.rapport-form{display:flex;gap:8px;padding:10px;border-top:1px solid #dde1e6;background:#fff;align-items:flex-end}
.rapport-input{flex:1;resize:none;border:1px solid #8a9099;border-radius:8px;padding:8px 10px;font:inherit;color:#1b1f24;max-height:120px;min-height:40px}
.rapport-input[aria-invalid=true]{border-color:#b91c1c}
.rapport-send{border:0;border-radius:8px;background:${BLUE};color:#fff;padding:9px 14px;font-weight:600}
.rapport-send:disabled{background:#6b7280;cursor:default}
.rapport-count{font-size:12px;color:#b91c1c;padding:0 12px 6px;background:#fff}
.rapport-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){.rapport-root{right:12px;bottom:12px}.rapport-panel{position:fixed;inset:0;width:auto;max-width:none;height:auto;max-height:none;border-radius:0}}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}`;

  const host = el("div", "rapport-widget");
  const root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS); // needs no 'unsafe-inline' in the site's style-src
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", "", { text: CSS }));
  }
  const bubble = el("button", "rapport-bubble", { type: "button", "aria-expanded": "false", "aria-controls": "rapport-panel", "aria-label": "Open chat" });
  bubble.appendChild(icon("M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"));
  const panel = el("div", "rapport-panel", { id: "rapport-panel", role: "dialog", "aria-label": "Chat" });
  panel.hidden = true;
  const header = el("div", "rapport-header");
  const title = el("h2", "rapport-title", { text: cfg.title || "Chat" });
  const restartBtn = el("button", "rapport-icon rapport-restart", { type: "button", text: "New chat", title: "Start a new conversation" });
  const closeBtn = el("button", "rapport-icon rapport-close", { type: "button", "aria-label": "Close chat", text: "\u2715" });
  header.append(title, restartBtn, closeBtn);
  const status = el("div", "rapport-status", { role: "status" });
  const log = el("div", "rapport-log", { role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
  const form = el("form", "rapport-form");
  const input = el("textarea", "rapport-input", { id: "rapport-input", rows: "1", placeholder: "Type your message\u2026" });
  const send = el("button", "rapport-send", { type: "submit", text: "Send" });
  const count = el("div", "rapport-count", { "aria-live": "polite" });
  form.append(el("label", "rapport-sr", { for: "rapport-input", text: "Your message" }), input, send);
  panel.append(header, status, log, count, form);
  const wrap = el("div", "rapport-root");
  wrap.append(panel, bubble);
  root.appendChild(wrap);

  // ---- state ----
  // {id, token, persona, max, greeting}. The token's expiry slides while it is used, so only
  // the server can tell whether it still holds: a 401 leads to a new session.
  let session = local.get(".session");
  let maxChars = 4000;
  const byId = new Map(); // message_id -> log entry
  const byClient = new Map(); // client_message_id -> log entry of a user message
  let outbox = []; // [{content, client_message_id}] not acknowledged yet
  let lastSeq = 0; // highest seq processed
  let streaming = null; // the answer being produced
  let started = false; // the session is in the log
  let starting = null;
  let transport = cfg.transport === "http" ? "http" : "ws";
  let conn = null; // the current WebSocket connection
  let attempt = 0; // reconnections since the last attach
  let failedOpens = 0; // connections that never authenticated
  let everAuthed = false;
  let reconnectTimer = 0;
  let fatal = false;
  let destroyed = false;
  let renewals = 0; // new sessions since the last attach or answer
  let keepLog = false; // the next session continues the visible log
  const rated = tab.get(".rated") || {};

  function setStatus(text, isError) {
    status.textContent = text || "";
    status.classList.toggle("rapport-error", !!isError);
  }
  const scroll = () => { log.scrollTop = log.scrollHeight; };

  // ---- the log ----
  function addEntry(role, content, opts) {
    opts = opts || {};
    const node = log.appendChild(el("div", "rapport-msg rapport-msg-" + role));
    const entry = { role, node, text: node.appendChild(el("div", "rapport-text")), id: opts.id || null };
    setText(entry, content || "");
    if (entry.id) byId.set(entry.id, entry);
    if (opts.done) finish(entry, { content, citations: opts.citations });
    else if (role === "assistant") typing(entry, true);
    scroll();
    return entry;
  }
  function setText(entry, content) {
    entry.content = content;
    entry.text.textContent = content;
  }
  function typing(entry, on) {
    entry.node.classList.toggle("rapport-streaming", on);
    attr(entry.node, "aria-busy", on); // read out once complete
    if (on && !entry.dots) {
      entry.dots = entry.node.appendChild(el("span", "rapport-typing", { role: "img", "aria-label": "Typing" }));
      entry.dots.append(el("i"), el("i"), el("i"));
    } else if (!on && entry.dots) {
      entry.dots.remove();
      entry.dots = null;
    }
  }
  function finish(entry, msg) {
    entry.done = true;
    typing(entry, false);
    if (typeof msg.content === "string") setText(entry, msg.content);
    if (entry.role !== "assistant") return;
    if (msg.cancelled) entry.node.appendChild(el("div", "rapport-note", { text: "(answer interrupted)" }));
    const cites = (msg.citations || []).slice().sort((a, b) => a.position - b.position);
    if (cites.length && !entry.sources) {
      entry.sources = entry.node.appendChild(el("div", "rapport-sources", { text: "Sources: " }));
      for (const c of cites) entry.sources.appendChild(el("span", "rapport-citation", { text: "[" + c.position + "] " + c.title }));
    }
    if (entry.id && session && entry.id !== session.greeting && !entry.rate) addFeedback(entry);
    scroll();
  }
  function addFeedback(entry) {
    const box = entry.node.appendChild(el("div", "rapport-feedback"));
    const up = el("button", "rapport-thumb rapport-thumb-up", { type: "button", "aria-pressed": "false", "aria-label": "Helpful" });
    const down = el("button", "rapport-thumb rapport-thumb-down", { type: "button", "aria-pressed": "false", "aria-label": "Not helpful" });
    up.appendChild(icon(THUMB));
    down.appendChild(icon(THUMB, true));
    const thanks = el("span", "rapport-thanks", { role: "status" });
    box.append(up, down, thanks);
    const show = (rating) => {
      attr(up, "aria-pressed", rating === "up");
      attr(down, "aria-pressed", rating === "down");
      thanks.textContent = "Thanks for your feedback";
    };
    if (rated[entry.id]) show(rated[entry.id]);
    entry.rate = async (rating) => {
      up.disabled = down.disabled = true;
      try {
        await call("POST", "/" + enc(session.id) + "/feedback", { rating, message_id: entry.id });
        rated[entry.id] = rating;
        tab.set(".rated", rated);
        show(rating);
      } catch (_) {
        thanks.textContent = "Could not send your feedback";
      }
      up.disabled = down.disabled = false;
    };
    up.onclick = () => entry.rate("up");
    down.onclick = () => entry.rate("down");
  }
  function clearLog() {
    log.textContent = "";
    byId.clear();
    byClient.clear();
    streaming = null;
  }

  // ---- HTTP ----
  class Problem extends Error {
    constructor(status, body, retry) {
      super((body && (body.detail || body.title)) || "HTTP " + status);
      Object.assign(this, { status, code: body && body.code, retry });
    }
  }
  async function request(method, path, body, accept, token) {
    const headers = { "X-API-Key": key, Accept: accept || "application/json" };
    token = token || (session && path && session.token);
    if (token) headers["X-Session-Token"] = token;
    if (body) headers["Content-Type"] = "application/json";
    const res = await fetch(base + path, { method, headers, body: body && JSON.stringify(body), credentials: "omit", cache: "no-store" });
    if (res.ok) return res;
    let problem = null;
    try { problem = await res.json(); } catch (_) { /* not JSON */ }
    throw new Problem(res.status, problem, Number(res.headers.get("Retry-After")) || 0);
  }
  async function call(method, path, body) {
    const text = await (await request(method, path, body)).text();
    return text ? JSON.parse(text) : null;
  }
  function describe(e) {
    if (e.code === "ORIGIN_NOT_ALLOWED") return "This chat is not enabled for this website.";
    if (e.status === 401) return "This chat is not available (invalid key).";
    if (e.status === 429) return "Too many requests; please wait " + (e.retry || 30) + " s.";
    if (e.status === 422) return e.message;
    return e instanceof Problem ? "Something went wrong (" + (e.code || e.status) + ")." : "Cannot reach the chat service.";
  }
  // The token expired, the session closed or is unknown: a new session is the way on.
  const sessionGone = (e) => e.status === 401 || e.status === 404 || e.code === "SESSION_CLOSED";

  // ---- the session ----
  function ensureStarted() {
    if (started || fatal) return Promise.resolve();
    return (starting = starting || begin().finally(() => { starting = null; }));
  }
  async function begin() {
    if (!key) return fail("This chat has no data-key.");
    setStatus("Connecting\u2026");
    try {
      if (session) {
        try {
          await loadHistory();
        } catch (e) {
          if (!sessionGone(e)) throw e;
          forget();
        }
      }
      if (!session) await createSession();
      started = true;
      setStatus("");
      if (transport === "ws") connect();
      flush();
    } catch (e) {
      if (e.status === 401 || e.status === 403) return fail(describe(e));
      setStatus(describe(e), true);
    }
  }
  async function createSession() {
    let visitor = local.get(".visitor");
    if (!visitor) local.set(".visitor", (visitor = randomId("v_", 22)));
    const s = await call("POST", "", { visitor_id: visitor });
    const g = s.greeting;
    session = { id: s.session_id, token: s.session_token, persona: s.persona, max: s.max_message_chars, greeting: g && g.message_id };
    local.set(".session", session);
    applySession();
    if (keepLog && log.firstChild) {
      // A renewed session: the earlier messages stay readable, but can no longer be rated.
      for (const old of log.querySelectorAll(".rapport-feedback,.rapport-pending")) old.remove();
      log.appendChild(el("div", "rapport-divider", { role: "separator", text: "New conversation" }));
      streaming = null;
    } else clearLog();
    keepLog = false;
    lastSeq = 0;
    if (g) addEntry("assistant", g.content, { id: g.message_id, done: true });
    renderPending();
  }
  async function loadHistory() {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 10; page++) {
      const r = await call("GET", "/" + enc(session.id) + "/messages?limit=50" + (cursor ? "&cursor=" + enc(cursor) : ""));
      items.push(...r.data); // newest first
      if (!(cursor = r.next_cursor)) break;
    }
    applySession();
    clearLog();
    lastSeq = tab.get(".seq." + session.id) || 0;
    for (const m of items.reverse()) {
      if (!byId.has(m.message_id)) addEntry(m.role === "user" ? "user" : "assistant", m.content, { id: m.message_id, done: true, citations: m.citations });
    }
    // Pending messages, less those the transcript shows answered (their ack was lost).
    const stored = tab.get(".outbox." + session.id) || [];
    const seen = new Set(items.map((m) => m.in_reply_to).concat(stored.map((m) => m.client_message_id)));
    outbox = stored.filter((m) => !items.some((i) => i.in_reply_to === m.client_message_id)).concat(outbox.filter((m) => !seen.has(m.client_message_id)));
    renderPending();
  }
  function applySession() {
    maxChars = session.max || 4000;
    if (!cfg.title && session.persona) title.textContent = session.persona;
    attr(panel, "aria-label", title.textContent);
    validate();
  }
  function forget() {
    if (session) {
      tab.set(".seq." + session.id, undefined);
      tab.set(".outbox." + session.id, undefined);
    }
    session = null;
    local.set(".session", undefined);
    started = false;
    closeConn();
  }
  function restart() {
    const old = session;
    forget();
    clearLog();
    outbox = [];
    if (old) request("POST", "/" + enc(old.id) + "/close", {}, "", old.token).catch(() => {});
    return ensureStarted();
  }
  // The session token expired or the session ended: a new session; pending messages go there.
  async function renew() {
    if (++renewals > 3) return fail("The chat is unavailable right now. Please try again later.");
    forget();
    keepLog = true;
    await ensureStarted();
    saveOutbox();
  }
  function fail(text) {
    fatal = true;
    closeConn();
    setStatus(text, true);
    validate();
  }
  function saveSeq(seq) {
    if (seq > lastSeq && session) tab.set(".seq." + session.id, (lastSeq = seq));
  }
  function saveOutbox() {
    if (session) tab.set(".outbox." + session.id, outbox.map((m) => ({ content: m.content, client_message_id: m.client_message_id })));
  }

  // ---- sending ----
  function pendingUser(m) {
    const entry = addEntry("user", m.content);
    entry.node.classList.add("rapport-pending");
    byClient.set(m.client_message_id, entry);
  }
  const renderPending = () => outbox.forEach(pendingUser);
  async function submit() {
    const content = input.value.trim();
    if (!content || chars(content) > maxChars || fatal) return;
    input.value = "";
    validate();
    const m = { content, client_message_id: randomId("w-", 20) };
    outbox.push(m);
    pendingUser(m);
    await ensureStarted();
    saveOutbox();
    flush();
  }
  // Sends the oldest pending message once no answer is running (one at a time, in order).
  function flush() {
    if (!started || streaming || !outbox.length) return;
    const m = outbox[0];
    if (transport === "ws") {
      if (!conn || !conn.attached || conn.draining || conn.sent.has(m.client_message_id)) return;
      conn.sent.add(m.client_message_id);
      conn.send({ type: "message", content: m.content, client_message_id: m.client_message_id, ref: m.client_message_id });
    } else if (!flush.busy) {
      flush.busy = true;
      sendHttp(m).finally(() => {
        flush.busy = false;
        flush();
      });
    }
  }
  function settle(cid, failure) {
    outbox = outbox.filter((m) => m.client_message_id !== cid);
    saveOutbox();
    const entry = byClient.get(cid);
    if (!entry) return;
    entry.node.classList.remove("rapport-pending");
    if (failure) {
      entry.node.classList.add("rapport-failed");
      entry.node.appendChild(el("div", "rapport-note", { text: "Not sent: " + failure }));
    }
  }

  // ---- HTTP transport: the answer as Server-Sent Events read with fetch, or plain JSON ----
  async function sendHttp(m) {
    const sse = window.ReadableStream && window.TextDecoder && "body" in Response.prototype;
    let answer = null;
    const start = (id) => (answer = answer || (streaming = (id && byId.get(id)) || addEntry("assistant", "", { id })));
    try {
      const body = { content: m.content, client_message_id: m.client_message_id };
      const res = await request("POST", "/" + enc(session.id) + "/messages", body, sse ? "text/event-stream" : "application/json");
      settle(m.client_message_id);
      if (!(res.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        const r = await res.json();
        return doneAnswer(start(r.message_id), r);
      }
      await readEvents(res.body, (type, d) => {
        if (d.seq) saveSeq(d.seq);
        type = d.type || type;
        if (d.role === "user") return;
        if (type === "message.started" || type === "started") start(d.message_id);
        else if (type === "token") {
          setText(start(d.message_id), answer.content + d.delta);
          scroll();
        } else if (type === "message.done" || type === "done") doneAnswer(start(d.message_id), d);
        else if (type === "error") setStatus(d.message || "The answer failed.", true);
      });
      if (answer && !answer.done) doneAnswer(answer, { cancelled: true });
    } catch (e) {
      if (answer && !answer.done) doneAnswer(answer, { cancelled: true });
      m.tries = (m.tries || 0) + 1;
      if (m.tries < 6 && (e.code === "BUSY" || e.status === 429 || (!(e instanceof Problem) && !answer))) {
        setStatus(e.status === 429 ? describe(e) : "Waiting for the connection\u2026");
        await new Promise((r) => setTimeout(r, (e.retry || 2) * 1000));
        return setStatus("");
      }
      if (sessionGone(e)) return renew();
      if (e.status === 403) return fail(describe(e));
      if (e.code === "DUPLICATE_MESSAGE") return settle(m.client_message_id), loadHistory(); // answered already
      settle(m.client_message_id, describe(e));
    }
  }
  function doneAnswer(entry, msg) {
    renewals = 0;
    if (msg.message_id && !entry.id) byId.set((entry.id = msg.message_id), entry);
    finish(entry, msg);
    if (streaming === entry) streaming = null;
    flush();
  }
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        let type = "message";
        const data = [];
        for (const line of buf.slice(0, cut).split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        buf = buf.slice(cut + 2);
        try {
          if (data.length) onEvent(type, JSON.parse(data.join("\n")));
        } catch (_) { /* not JSON: skip */ }
      }
    }
  }

  // ---- WebSocket transport (protocol/README.md sections 1, 3, 4, 6, 7) ----
  function connect() {
    if (destroyed || fatal || !session || transport !== "ws") return;
    clearTimeout(reconnectTimer);
    let ws;
    try {
      ws = new WebSocket(api.replace(/^http/, "ws") + "/api/v1/ws", ["rapport.v1", "rapport.key." + key + "." + session.token]);
    } catch (_) {
      return degrade();
    }
    const c = { ws, lastRx: Date.now(), pingAt: 0, sent: new Set() };
    c.send = (frame) => ws.readyState === 1 && ws.send(JSON.stringify(frame));
    const old = conn;
    conn = c;
    c.timer = setInterval(() => heartbeat(c), 5000);
    ws.onmessage = (ev) => {
      c.lastRx = Date.now();
      c.pingAt = 0;
      let f;
      try { f = JSON.parse(ev.data); } catch (_) { return; }
      if (f && typeof f.type === "string" && !c.retired) onFrame(c, f, old);
    };
    ws.onclose = (ev) => onClose(c, ev);
  }
  // Browsers cannot see WebSocket pings: after 30 s of silence ask, after 10 s more give up.
  function heartbeat(c) {
    const now = Date.now();
    if ((!c.authed && now - c.lastRx > 15000) || (c.pingAt && now - c.pingAt > 10000)) return c.ws.close(4000);
    if (!c.pingAt && now - c.lastRx > 30000) {
      c.pingAt = now;
      c.send({ type: "ping", nonce: randomId("p", 8) });
    }
  }
  function onFrame(c, f, old) {
    switch (f.type) {
      case "auth.ok":
        c.authed = everAuthed = true;
        failedOpens = 0;
        c.fromZero = !lastSeq;
        return c.send({ type: "session.resume", session_id: session.id, last_seq: lastSeq });
      case "session.attached":
        c.attached = true;
        c.high = f.last_seq;
        attempt = renewals = 0;
        setStatus("");
        if (old && old !== c) retire(old);
        return flush();
      case "ack":
        settle(f.client_message_id);
        return f.duplicate && flush(); // answered before the drop: no answer follows
      case "resume_failed": // the missed frames are gone: rebuild from the transcript
        streaming = null;
        saveSeq(c.high || 0);
        return loadHistory().then(flush, () => {});
      case "reconnect": // the server drains: reconnect after after_ms, resume, then close this one
        c.draining = true;
        setTimeout(() => (conn === c || !conn) && connect(), f.after_ms || 0);
        return;
      case "error":
        return onError(c, f);
    }
    if (typeof f.seq !== "number" || f.seq <= lastSeq) return; // not numbered, or already shown
    if (lastSeq && f.seq > lastSeq + 1 && !c.fromZero) return c.ws.close(4000); // a gap: resume
    c.fromZero = false;
    saveSeq(f.seq);
    let entry = byId.get(f.message_id);
    if (f.type === "message.started") {
      if (!entry) streaming = addEntry("assistant", "", { id: f.message_id });
      else if (!entry.done) streaming = entry;
    } else if (f.type === "token") {
      if (!entry) entry = streaming = addEntry("assistant", "", { id: f.message_id });
      if (!entry.done) setText(entry, entry.content + f.delta);
      scroll();
    } else if (f.type === "message.done" && f.role === "user") {
      entry = entry || byClient.get(f.client_message_id) || addEntry("user", f.content, { done: true });
      if (!entry.id) byId.set((entry.id = f.message_id), entry);
      if (f.client_message_id) settle(f.client_message_id);
    } else if (f.type === "message.done") {
      doneAnswer(entry || addEntry("assistant", "", { id: f.message_id }), f);
    }
  }
  function onError(c, f) {
    const m = f.ref && outbox.find((x) => x.client_message_id === f.ref);
    if (m) {
      c.sent.delete(m.client_message_id);
      if (f.code === "rate_limited") return setTimeout(flush, f.retry_after_ms || 2000);
      if (f.code !== "busy" && f.code !== "internal") settle(m.client_message_id, f.message || f.code);
      return; // busy: resent when the running answer is done
    }
    if (f.code === "session_not_found" || f.code === "session_closed") {
      retire(c);
      renew();
    } else if (f.code === "invalid_state" && !c.attached) {
      lastSeq = 0; // our position is ahead of the session: take it all again
      c.fromZero = true;
      c.send({ type: "session.resume", session_id: session.id, last_seq: 0 });
    } else if (f.code === "busy" && !c.attached) {
      c.ws.close(4000); // live on another server for a moment: retry
    } else if (/^upstream_/.test(f.code)) {
      setStatus("The answer was cut short. Please try again.", true);
    }
  }
  function onClose(c, ev) {
    clearInterval(c.timer);
    if (c.retired || conn !== c || destroyed) return;
    conn = null;
    if (ev.code === 4401) return renew(); // session token refused (expired): a new session
    if (ev.code === 4403) return fail("This chat is not enabled for this website.");
    if (!c.authed && ++failedOpens >= 2 && !everAuthed) return degrade();
    if (c.draining) return;
    setStatus("Reconnecting\u2026");
    reconnectTimer = setTimeout(connect, Math.random() * Math.min(30000, 500 * 2 ** attempt++));
  }
  function retire(c) {
    c.retired = true;
    clearInterval(c.timer);
    c.ws.close(1000);
  }
  function closeConn() {
    clearTimeout(reconnectTimer);
    if (conn) retire(conn);
    conn = null;
  }
  // WebSockets do not get through (a proxy, say): use HTTP from now on.
  function degrade() {
    transport = "http";
    closeConn();
    setStatus("");
    flush();
  }

  // ---- UI ----
  function validate() {
    const n = chars(input.value.trim());
    const over = n > maxChars;
    attr(input, "aria-invalid", over);
    count.textContent = over ? n + " / " + maxChars + " characters: please shorten your message" : n > maxChars * 0.9 ? n + " / " + maxChars : "";
    send.disabled = !n || over || fatal;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }
  function open(focus) {
    panel.hidden = false;
    attr(bubble, "aria-expanded", true);
    attr(bubble, "aria-label", "Close chat");
    tab.set(".open", true);
    if (focus) input.focus();
    scroll();
    ensureStarted();
  }
  function close() {
    panel.hidden = true;
    attr(bubble, "aria-expanded", false);
    attr(bubble, "aria-label", "Open chat");
    tab.set(".open", false);
    bubble.focus();
  }
  bubble.onclick = () => (panel.hidden ? open(true) : close());
  closeBtn.onclick = close;
  restartBtn.onclick = () => {
    restart();
    input.focus();
  };
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      close();
    }
  });
  input.addEventListener("input", validate);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  form.onsubmit = (e) => {
    e.preventDefault();
    submit();
  };
  const online = () => {
    if (conn || !started || transport !== "ws") return;
    attempt = 0;
    connect();
  };
  window.addEventListener("online", online);
  validate();
  (document.body || document.documentElement).appendChild(host);
  if (cfg.open === "true" || tab.get(".open")) open(false);

  window.RapportWidget = {
    host, open: () => open(true), close,
    destroy() {
      destroyed = true;
      closeConn();
      window.removeEventListener("online", online);
      host.remove();
      if (window.RapportWidget && window.RapportWidget.host === host) delete window.RapportWidget;
    },
  };
})();
