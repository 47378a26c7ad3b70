// The chat page: a client of the server's OpenAI-compatible API like any
// other (GET /v1/models, POST /v1/chat/completions with stream: true,
// GET /v1/batches and /v1/files/{id}/content for the batches panel).
// State lives in localStorage: settings, and the conversations.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const KEY_SETTINGS = "qwen3.settings";
  const KEY_CONVS = "qwen3.conversations";
  const KEY_CURRENT = "qwen3.current";
  // Used only until /v1/models answers (it carries the server's values).
  const FALLBACK = {
    enable_thinking: true, thinking_budget: -1,
    thinking: { temperature: 0.6, top_p: 0.95, top_k: 20 },
    non_thinking: { temperature: 0.7, top_p: 0.8, top_k: 20 },
  };

  const load = (k, d) => { try { const v = JSON.parse(localStorage.getItem(k)); return v == null ? d : v; } catch { return d; } };
  const save = (k, v) => { try { localStorage.setItem(k, JSON.stringify(v)); } catch { notice("This browser cannot store the conversation (storage full or disabled)."); } };

  const settings = Object.assign({ model: "", apiKey: "", system: "", compare: [] }, load(KEY_SETTINGS, {}));
  let convs = load(KEY_CONVS, []);
  let currentId = load(KEY_CURRENT, null);
  let models = [];
  let running = []; // AbortControllers of the requests in flight

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || "HTTP " + status);
      this.status = status; this.code = e.code || ""; this.type = e.type || ""; this.param = e.param || "";
    }
  }

  // plain turns any failure into words for people, not protocol.
  function plain(err) {
    if (err && err.name === "AbortError") return "Stopped.";
    if (err instanceof TypeError) return "Cannot reach the server. Check that it is running and try again.";
    if (!(err instanceof ApiError)) return String((err && err.message) || err);
    switch (err.status) {
      case 401: return "The server needs an API key, or the key given is wrong. Enter it under Settings.";
      case 403: return "The server refused access: " + err.message;
      case 404: return err.code === "model_not_found"
        ? "That model or adapter is not loaded on the server any more. Pick another one in the list."
        : "Not found: " + err.message;
      case 413: return "The conversation is too long for the server to accept. Start a new chat.";
      case 429: case 503: return "The server is busy or still loading. Try again in a moment.";
      case 400: return "The server could not use this request: " + err.message;
      case 0: return "The answer stopped because of a server error: " + err.message;
      default: return "The server failed (" + err.status + "): " + err.message;
    }
  }

  function notice(text) {
    const n = $("notice");
    n.textContent = text || "";
    n.hidden = !text;
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    if (settings.apiKey) h.Authorization = "Bearer " + settings.apiKey;
    return h;
  }

  async function apiError(resp) {
    let body = null;
    try { body = await resp.json(); } catch { /* not JSON */ }
    return new ApiError(resp.status, body);
  }

  // ---- models and presets ----

  async function loadModels() {
    try {
      const resp = await fetch("/v1/models", { headers: headers() });
      if (!resp.ok) throw await apiError(resp);
      models = (await resp.json()).data || [];
      notice("");
    } catch (err) {
      models = [];
      notice(plain(err));
      if (err instanceof ApiError && err.status === 401) {
        // The server wants a key: open the settings at the key field.
        $("settings").hidden = false;
        $("settings-toggle").setAttribute("aria-expanded", "true");
        $("api-key").focus();
      }
    }
    const sel = $("model");
    sel.replaceChildren();
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.id;
      o.textContent = m.parent ? m.id + " (adapter)" : m.id + " (base)";
      sel.append(o);
    }
    if (models.some((m) => m.id === settings.model)) sel.value = settings.model;
    settings.model = sel.value;
    renderComparePicker();
    onModelChange(false);
  }

  const defaults = () => {
    const m = models.find((x) => x.id === settings.model);
    return (m && m.defaults) || FALLBACK;
  };

  function onModelChange(userAction) {
    const m = models.find((x) => x.id === settings.model);
    $("model-note").textContent = m && m.parent ? "adapter on " + m.parent : "";
    if (userAction || settings.thinking == null) $("thinking").checked = defaults().enable_thinking;
    else $("thinking").checked = settings.thinking;
    applyPreset();
  }

  // applyPreset fills the sampling fields with the active mode's preset.
  function applyPreset() {
    const d = defaults();
    const thinking = $("thinking").checked;
    settings.thinking = thinking;
    const p = (thinking ? d.thinking : d.non_thinking) || {};
    $("temperature").value = p.temperature ?? "";
    $("top_p").value = p.top_p ?? "";
    $("top_k").value = p.top_k ?? "";
    $("budget").value = d.thinking_budget >= 0 ? d.thinking_budget : "";
    $("budget").disabled = !thinking;
    $("preset-name").textContent = thinking ? "(thinking preset)" : "(non-thinking preset)";
    save(KEY_SETTINGS, settings);
  }

  const num = (id) => { const v = $(id).value.trim(); return v === "" ? undefined : Number(v); };

  function requestBody(model, messages) {
    const thinking = $("thinking").checked;
    const body = {
      model, messages, stream: true, stream_options: { include_usage: true },
      chat_template_kwargs: { enable_thinking: thinking },
      temperature: num("temperature"), top_p: num("top_p"), top_k: num("top_k"),
      max_tokens: num("max_tokens"),
    };
    if (thinking && num("budget") !== undefined) body.thinking_budget = num("budget");
    return body;
  }

  // ---- streaming ----

  // stream posts a chat request and calls on.reasoning / on.content with
  // each piece as it arrives; it resolves with the usage and finish reason.
  async function stream(body, signal, on) {
    const resp = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
    if (!resp.ok) throw await apiError(resp);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    let usage = null;
    let finish = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return { usage, finish };
          const obj = JSON.parse(data);
          if (obj.error) throw new ApiError(0, obj);
          if (obj.usage) usage = obj.usage;
          const ch = obj.choices && obj.choices[0];
          if (!ch) continue;
          const d = ch.delta || {};
          const r = d.reasoning_content ?? d.reasoning;
          if (r) on.reasoning(r);
          if (d.content) on.content(d.content);
          if (ch.finish_reason) finish = ch.finish_reason;
        }
      }
    }
    return { usage, finish };
  }

  // run streams one answer into msg (a stored assistant message) and its
  // element, keeping timings for the stats line.
  async function run(model, messages, msg, view) {
    const ctl = new AbortController();
    running.push(ctl);
    setRunning(true);
    const t0 = performance.now();
    let tFirst = 0, tReasonStart = 0, tReasonEnd = 0, reasonPieces = 0;
    const first = () => { if (!tFirst) tFirst = performance.now(); };
    let live = true;
    // A repaint queued before the end must not paint the message live again.
    const paint = throttle(() => view.update(msg, live));
    try {
      const { usage, finish } = await stream(requestBody(model, messages), ctl.signal, {
        reasoning(text) {
          first();
          if (!tReasonStart) tReasonStart = performance.now();
          reasonPieces++;
          msg.reasoning += text;
          msg.stats.reasoningTokens = reasonPieces;
          paint();
        },
        content(text) {
          first();
          if (tReasonStart && !tReasonEnd) tReasonEnd = performance.now();
          msg.content += text;
          paint();
        },
      });
      const end = performance.now();
      if (tReasonStart && !tReasonEnd) tReasonEnd = end;
      if (usage) {
        msg.stats.promptTokens = usage.prompt_tokens;
        msg.stats.tokens = usage.completion_tokens;
        const det = usage.completion_tokens_details;
        if (det && det.reasoning_tokens != null) msg.stats.reasoningTokens = det.reasoning_tokens;
      }
      msg.stats.finish = finish;
      msg.stats.ttft = tFirst ? (tFirst - t0) / 1000 : null;
      msg.stats.seconds = (end - (tFirst || t0)) / 1000;
      if (msg.stats.tokens && msg.stats.seconds > 0) msg.stats.tps = msg.stats.tokens / msg.stats.seconds;
    } catch (err) {
      if (err.name === "AbortError") msg.stopped = true;
      else msg.error = plain(err);
      if (err instanceof ApiError && err.status === 401) notice(plain(err));
    } finally {
      if (tReasonStart) msg.stats.reasoningSeconds = ((tReasonEnd || performance.now()) - tReasonStart) / 1000;
      running = running.filter((c) => c !== ctl);
      setRunning(running.length > 0);
      live = false;
      view.update(msg, false);
    }
  }

  function throttle(fn) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; fn(); });
    };
  }

  function setRunning(on) {
    $("stop").hidden = !on;
    $("send").disabled = on;
    const conv = current();
    const last = conv && conv.messages[conv.messages.length - 1];
    $("regenerate").hidden = on || compareMode() || !(last && last.role === "assistant");
  }

  // ---- rendering messages ----

  function messageView(container, title) {
    const el = $("message-template").content.firstElementChild.cloneNode(true);
    container.append(el);
    const q = (s) => el.querySelector(s);
    return {
      el,
      update(msg, live) {
        el.classList.toggle(msg.role, true);
        el.dataset.model = msg.model || "";
        q(".who").textContent = title || (msg.role === "user" ? "You" : msg.model || "Assistant");
        const think = q(".thinking");
        if (msg.role === "assistant" && msg.reasoning) {
          think.hidden = false;
          q(".reasoning").textContent = msg.reasoning;
          const n = msg.stats.reasoningTokens || 0;
          const reasoningLive = live && !msg.content;
          q(".thinking-label").textContent = reasoningLive ? "Thinking…" : "Thinking";
          let s = n + (n === 1 ? " token" : " tokens");
          if (msg.stats.reasoningSeconds != null) s += " · " + msg.stats.reasoningSeconds.toFixed(1) + " s";
          q(".thinking-stats").textContent = s;
          if (reasoningLive) think.open = true;
          else if (live && msg.content && !think.dataset.closedOnce) { think.open = false; think.dataset.closedOnce = "1"; }
        }
        const content = q(".content");
        if (msg.role === "user") content.textContent = msg.content;
        else content.innerHTML = window.renderMarkdown(msg.content);
        const err = q(".error");
        err.hidden = !msg.error;
        err.textContent = msg.error || "";
        const stats = q(".stats");
        stats.textContent = msg.role === "assistant" ? statsLine(msg, live) : "";
        el.setAttribute("aria-busy", live ? "true" : "false");
      },
    };
  }

  function statsLine(msg, live) {
    if (live) return "generating…";
    const s = msg.stats || {};
    const parts = [];
    if (msg.stopped) parts.push("stopped");
    if (s.tokens != null) parts.push(s.tokens + " tokens");
    if (s.reasoningTokens) parts.push(s.reasoningTokens + " thinking");
    if (s.tps) parts.push(s.tps.toFixed(1) + " tok/s");
    if (s.ttft != null) parts.push("first token " + s.ttft.toFixed(2) + " s");
    if (s.finish === "length") parts.push("cut at the token limit");
    return parts.join(" · ");
  }

  // ---- conversations ----

  const current = () => convs.find((c) => c.id === currentId) || null;
  const compareMode = () => $("compare-toggle").checked;

  function newConversation() {
    const c = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: "New chat", created: new Date().toISOString(), messages: [] };
    convs.unshift(c);
    currentId = c.id;
    persist();
    return c;
  }

  function persist() {
    save(KEY_CONVS, convs);
    save(KEY_CURRENT, currentId);
    renderSidebar();
  }

  function renderSidebar() {
    const ul = $("conversations");
    ul.replaceChildren();
    for (const c of convs) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = c.title;
      if (c.id === currentId) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => { if (running.length) return; currentId = c.id; persist(); renderConversation(); closeSidebar(); });
      li.append(b);
      ul.append(li);
    }
  }

  function renderConversation() {
    const box = $("messages");
    box.replaceChildren();
    const c = current();
    if (c) for (const m of c.messages) messageView(box, null).update(m, false);
    setRunning(running.length > 0);
    box.scrollTop = box.scrollHeight;
  }

  // history is what goes back to the server: content only. The reasoning
  // of earlier turns is not resent (Qwen3's template drops it anyway), and
  // failed or empty answers are left out.
  function history(conv) {
    const msgs = [];
    const sys = settings.system.trim();
    if (sys) msgs.push({ role: "system", content: sys });
    for (const m of conv.messages) {
      if (m.role === "assistant" && (m.error || !m.content)) continue;
      msgs.push({ role: m.role, content: m.content });
    }
    return msgs;
  }

  async function answer(conv) {
    const msg = { role: "assistant", model: settings.model, content: "", reasoning: "", stats: {} };
    const msgs = history(conv);
    conv.messages.push(msg);
    const view = messageView($("messages"), null);
    view.update(msg, true);
    await run(settings.model, msgs, msg, view);
    persist();
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  async function send(text) {
    if (!settings.model) { notice("No model to talk to: the server lists none (see the message above) or is not reachable."); return; }
    if (compareMode()) return compare(text);
    const conv = current() || newConversation();
    if (conv.messages.length === 0) conv.title = text.slice(0, 48);
    const user = { role: "user", content: text };
    conv.messages.push(user);
    persist();
    messageView($("messages"), null).update(user, false);
    await answer(conv);
  }

  async function regenerate() {
    const conv = current();
    if (!conv || running.length) return;
    const last = conv.messages[conv.messages.length - 1];
    if (!last || last.role !== "assistant") return;
    conv.messages.pop();
    renderConversation();
    await answer(conv);
  }

  // ---- compare mode ----

  function renderComparePicker() {
    const box = $("compare-models");
    box.replaceChildren();
    const chosen = new Set(settings.compare.filter((id) => models.some((m) => m.id === id)));
    if (chosen.size === 0) models.slice(0, 4).forEach((m) => chosen.add(m.id));
    for (const m of models) {
      const l = document.createElement("label");
      const cb = document.createElement("input");
      cb.type = "checkbox";
      cb.value = m.id;
      cb.checked = chosen.has(m.id);
      cb.addEventListener("change", () => { settings.compare = [...box.querySelectorAll("input:checked")].map((i) => i.value); save(KEY_SETTINGS, settings); });
      l.append(cb, " " + m.id);
      box.append(l);
    }
    settings.compare = [...chosen];
  }

  async function compare(text) {
    const chosen = settings.compare.filter((id) => models.some((m) => m.id === id));
    if (chosen.length === 0) { notice("Choose at least one model or adapter to compare."); return; }
    notice("");
    const box = $("compare");
    box.replaceChildren();
    const q = document.createElement("p");
    q.className = "compare-prompt";
    q.textContent = text;
    const grid = document.createElement("div");
    grid.className = "compare-grid";
    box.append(q, grid);
    const sys = settings.system.trim();
    const msgs = (sys ? [{ role: "system", content: sys }] : []).concat([{ role: "user", content: text }]);
    await Promise.all(chosen.map((id) => {
      const col = document.createElement("div");
      col.className = "compare-column";
      col.dataset.model = id;
      grid.append(col);
      const msg = { role: "assistant", model: id, content: "", reasoning: "", stats: {} };
      const view = messageView(col, id);
      view.update(msg, true);
      return run(id, msgs, msg, view);
    }));
  }

  function setCompare(on) {
    $("compare-pick").hidden = !on;
    $("compare").hidden = !on;
    $("messages").hidden = on;
    $("model").disabled = on;
    setRunning(running.length > 0);
  }

  // ---- export ----

  function exportAll() {
    const blob = new Blob([JSON.stringify({ exported: new Date().toISOString(), conversations: convs }, null, 2)], { type: "application/json" });
    saveBlob(blob, "qwen3-conversations.json");
  }

  // saveBlob has the browser save blob as a file called name.
  function saveBlob(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // ---- batches ----

  let batchTimer = null;

  // loadBatches fills the batches table (the newest 100 of this key's) and,
  // while the panel is open and a batch is not finished, refreshes it.
  async function loadBatches() {
    clearTimeout(batchTimer);
    if ($("batches").hidden) return;
    let list;
    try {
      const resp = await fetch("/v1/batches?limit=100", { headers: headers() });
      if (!resp.ok) throw await apiError(resp);
      list = (await resp.json()).data || [];
    } catch (err) {
      $("batch-rows").replaceChildren();
      $("batches-note").textContent = err instanceof ApiError && err.code === "batches_disabled"
        ? "Batches are off on this server (it needs batch.data_dir)." : plain(err);
      return;
    }
    $("batches-note").textContent = list.length ? "" : "No batches yet. Create one with POST /v1/batches (see the README).";
    $("batch-rows").replaceChildren(...list.map(batchRow));
    const open = ["validating", "in_progress", "finalizing", "cancelling"];
    if (list.some((b) => open.includes(b.status))) batchTimer = setTimeout(loadBatches, 2000);
  }

  function batchRow(b) {
    const tr = document.createElement("tr");
    tr.dataset.batch = b.id;
    const cell = (...kids) => { const td = document.createElement("td"); td.append(...kids); tr.append(td); return td; };
    const c = b.request_counts || { total: 0, completed: 0, failed: 0 };
    const done = c.completed + c.failed;
    cell(b.id).title = new Date(b.created_at * 1000).toLocaleString() + " · " + b.endpoint;
    const status = cell(b.status.replace("_", " "));
    status.className = "status status-" + b.status;
    const errs = (b.errors && b.errors.data) || [];
    if (errs.length) status.title = errs.map((e) => (e.line ? "line " + e.line + ": " : "") + e.message).join("\n");
    const bar = document.createElement("progress");
    bar.max = Math.max(c.total, 1);
    bar.value = b.status === "completed" && c.total === 0 ? 1 : done;
    bar.setAttribute("aria-label", b.id + ": " + done + " of " + c.total + " requests done");
    cell(bar);
    cell(done + " / " + c.total + (c.failed ? " (" + c.failed + " failed)" : "")).className = "counts";
    const links = cell();
    for (const [name, id] of [["output", b.output_file_id], ["errors", b.error_file_id]]) {
      if (!id) continue;
      const a = document.createElement("a");
      a.href = "/v1/files/" + encodeURIComponent(id) + "/content";
      a.textContent = name;
      a.className = "file-" + name;
      a.addEventListener("click", (e) => { e.preventDefault(); download(id, b.id + "-" + name + ".jsonl"); });
      links.append(a);
    }
    return tr;
  }

  // download fetches a file with the API key (a plain link cannot send it)
  // and saves it.
  async function download(id, name) {
    try {
      const resp = await fetch("/v1/files/" + encodeURIComponent(id) + "/content", { headers: headers() });
      if (!resp.ok) throw await apiError(resp);
      saveBlob(await resp.blob(), name);
    } catch (err) {
      $("batches-note").textContent = plain(err);
    }
  }

  function closeSidebar() { document.body.classList.remove("sidebar-open"); }

  // ---- wiring ----

  function init() {
    $("api-key").value = settings.apiKey;
    $("system").value = settings.system;
    $("model").addEventListener("change", (e) => { settings.model = e.target.value; onModelChange(true); });
    $("thinking").addEventListener("change", applyPreset);
    $("reset-sampling").addEventListener("click", applyPreset);
    $("api-key").addEventListener("change", (e) => { settings.apiKey = e.target.value.trim(); save(KEY_SETTINGS, settings); loadModels(); });
    $("system").addEventListener("change", (e) => { settings.system = e.target.value; save(KEY_SETTINGS, settings); });
    $("settings-toggle").addEventListener("click", (e) => {
      const open = $("settings").hidden;
      $("settings").hidden = !open;
      e.target.setAttribute("aria-expanded", String(open));
    });
    $("batches-toggle").addEventListener("click", (e) => {
      const open = $("batches").hidden;
      $("batches").hidden = !open;
      e.target.setAttribute("aria-expanded", String(open));
      loadBatches();
    });
    $("batches-refresh").addEventListener("click", loadBatches);
    $("compare-toggle").addEventListener("change", (e) => setCompare(e.target.checked));
    $("new-chat").addEventListener("click", () => { if (running.length) return; newConversation(); renderConversation(); closeSidebar(); $("prompt").focus(); });
    $("delete-chat").addEventListener("click", () => {
      if (running.length || !current()) return;
      convs = convs.filter((c) => c.id !== currentId);
      currentId = convs.length ? convs[0].id : null;
      persist();
      renderConversation();
    });
    $("export").addEventListener("click", exportAll);
    $("stop").addEventListener("click", () => running.forEach((c) => c.abort()));
    $("regenerate").addEventListener("click", regenerate);
    $("open-sidebar").addEventListener("click", () => document.body.classList.add("sidebar-open"));
    $("close-sidebar").addEventListener("click", closeSidebar);
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("prompt").value.trim();
      if (!text || running.length) return;
      $("prompt").value = "";
      send(text);
    });
    $("prompt").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer").requestSubmit();
      }
    });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && running.length) running.forEach((c) => c.abort()); });
    renderSidebar();
    renderConversation();
    loadModels();
  }

  init();
})();
