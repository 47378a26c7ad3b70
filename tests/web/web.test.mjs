// The chat page in a real headless Chromium (Debian's), driven by
// playwright-core. Run by cmd/qwen3-server's TestWebPage, which starts the
// servers and sets CHAIN_URL (chain model, API key API_KEY) and RANDOM_URL
// (random model with the "medical-lora" adapter loaded).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { CHAIN_URL, RANDOM_URL, API_KEY, CHROMIUM, SCREENSHOTS } = process.env;
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// withPage opens a fresh browser profile (new --user-data-dir, so no
// localStorage carries over) and closes it after fn.
async function withPage(fn, viewport = { width: 1280, height: 800 }) {
  const dir = mkdtempSync(join(tmpdir(), "qwen3-web-"));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: ["--headless", ...FLAGS], viewport, acceptDownloads: true,
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
  try {
    await fn(page);
    assert.deepEqual(errors, [], "the page logged errors");
  } catch (err) {
    if (errors.length) err.message += "\npage errors: " + errors.join("\n");
    await shot(page, "failure-" + Date.now()).catch(() => {});
    throw err;
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const shot = (page, name) => page.screenshot({ path: join(SCREENSHOTS, name + ".png"), fullPage: false });
const last = (page, sel) => page.locator(".message.assistant").last().locator(sel);
const idle = (page) => page.waitForFunction(() => {
  const m = [...document.querySelectorAll("#messages .message.assistant, #compare .message")];
  return m.length > 0 && m.every((e) => e.getAttribute("aria-busy") === "false");
});

async function sendMessage(page, text) {
  await page.fill("#prompt", text);
  await page.press("#prompt", "Enter");
}

test("API key, streamed reasoning and answer apart, thinking switch, history, errors", async () => {
  await withPage(async (page) => {
    await page.goto(CHAIN_URL);
    // No key yet: the server answers 401 and the page says so in words.
    await page.waitForSelector("#notice:not([hidden])");
    assert.match(await page.textContent("#notice"), /needs an API key/);
    await shot(page, "error-api-key");

    // ...and opens the settings at the key field.
    assert.equal(await page.isVisible("#settings"), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), "api-key");
    await page.fill("#api-key", API_KEY);
    await page.press("#api-key", "Tab");
    await page.waitForSelector("#notice", { state: "hidden" });
    assert.equal(await page.inputValue("#model"), "tiny-chain");
    // The thinking preset, as the server reports it.
    assert.equal(await page.inputValue("#temperature"), "0.6");
    assert.equal(await page.inputValue("#top_p"), "0.95");
    assert.equal(await page.inputValue("#top_k"), "20");

    // Shift+Enter adds a line; it does not send.
    await page.fill("#prompt", "a");
    await page.press("#prompt", "Shift+Enter");
    await page.type("#prompt", "b");
    assert.equal(await page.inputValue("#prompt"), "a\nb");
    assert.equal(await page.locator(".message").count(), 0);

    const bodies = [];
    page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON()); });
    await sendMessage(page, "Hi there");
    await idle(page);
    assert.equal((await last(page, ".reasoning").textContent()).trim(), "Let me think.");
    assert.equal((await last(page, ".content").textContent()).trim(), "Hello!");
    assert.match(await last(page, ".thinking-stats").textContent(), /^\d+ tokens? · \d+\.\d s$/);
    const stats = await last(page, ".stats").textContent();
    assert.match(stats, /\d+ tokens/);
    assert.match(stats, /tok\/s/);
    assert.equal(bodies[0].stream, true);
    assert.equal(bodies[0].chat_template_kwargs.enable_thinking, true);
    assert.equal(bodies[0].temperature, 0.6);
    await last(page, ".thinking summary").click(); // open it for the picture
    await shot(page, "chat");

    // Earlier turns go back as content only: the reasoning is not resent.
    await sendMessage(page, "And again");
    await idle(page);
    assert.deepEqual(bodies[1].messages, [
      { role: "user", content: "Hi there" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "And again" },
    ]);

    // Thinking off: the non-thinking preset fills the fields, the request
    // says so, and no Thinking block appears.
    await page.uncheck("#thinking");
    assert.equal(await page.inputValue("#temperature"), "0.7");
    assert.equal(await page.inputValue("#top_p"), "0.8");
    await page.fill("#temperature", "1.3");
    await page.click("#reset-sampling");
    assert.equal(await page.inputValue("#temperature"), "0.7");
    await sendMessage(page, "No thinking please");
    await idle(page);
    assert.equal(bodies[2].chat_template_kwargs.enable_thinking, false);
    assert.equal(bodies[2].temperature, 0.7);
    assert.equal(bodies[2].thinking_budget, undefined);
    assert.equal(await last(page, ".thinking").isHidden(), true);
    assert.notEqual((await last(page, ".content").textContent()).trim(), "");

    // Regenerate replaces the last answer.
    const before = await page.locator(".message.assistant").count();
    await page.click("#regenerate");
    await idle(page);
    assert.equal(await page.locator(".message.assistant").count(), before);
    assert.equal(bodies.length, 4);

    // A request the server refuses: its message, in words, in the answer.
    await page.fill("#max_tokens", "0");
    await sendMessage(page, "Zero tokens");
    await idle(page);
    assert.match(await last(page, ".error").textContent(), /could not use this request: max_tokens must be at least 1/);
    await page.fill("#max_tokens", "");

    // Kept in localStorage: after a reload the conversation is still there.
    await page.reload();
    await page.waitForSelector("#conversations button[aria-current=true]");
    assert.equal(await page.textContent("#conversations button[aria-current=true]"), "Hi there");
    assert.equal((await page.locator("#messages .message.assistant .content").first().textContent()).trim(), "Hello!");
    // Export downloads every conversation as JSON.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
    const exported = JSON.parse(readFileSync(await download.path(), "utf8"));
    assert.equal(exported.conversations[0].messages[1].content, "Hello!");
    assert.equal(exported.conversations[0].messages[1].reasoning, "Let me think.");

    // Markdown is rendered, and anything else stays text.
    const md = await page.evaluate(() => {
      const d = document.createElement("div");
      d.innerHTML = window.renderMarkdown('<img src=x onerror="window.pwned=1"> **bold** [x](javascript:alert(1)) [ok](https://example.com) `<i>`\n```js\nif (a < b) {}\n```');
      return { imgs: d.querySelectorAll("img").length, strong: d.querySelector("strong")?.textContent, links: [...d.querySelectorAll("a")].map((a) => a.href),
        code: d.querySelector("p code")?.textContent, pre: d.querySelector("pre code")?.textContent, pwned: window.pwned };
    });
    assert.deepEqual(md, { imgs: 0, strong: "bold", links: ["https://example.com/"], code: "<i>", pre: "if (a < b) {}", pwned: undefined });
  });
});

test("adapter picker, stop, compare mode, phone layout, dark mode", async () => {
  await withPage(async (page) => {
    await page.goto(RANDOM_URL);
    await page.waitForSelector("#model option[value=medical-lora]", { state: "attached" });
    assert.deepEqual(await page.locator("#model option").allTextContents(), ["qwen3-tiny (base)", "medical-lora (adapter)"]);
    await page.selectOption("#model", "medical-lora");
    assert.equal(await page.textContent("#model-note"), "adapter on qwen3-tiny");

    const bodies = [];
    page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON()); });
    await page.click("#settings-toggle");
    await page.fill("#max_tokens", "8");
    await sendMessage(page, "Hello adapter");
    await idle(page);
    assert.equal(bodies[0].model, "medical-lora");
    assert.equal(await page.locator(".message.assistant").last().getAttribute("data-model"), "medical-lora");

    // Stop mid-stream: the request is aborted, and the server frees the slot.
    await page.fill("#max_tokens", "3500");
    await sendMessage(page, "Write a long story");
    await page.waitForFunction(() => {
      const m = [...document.querySelectorAll(".message.assistant")].pop();
      return m && (m.querySelector(".content").textContent + m.querySelector(".reasoning").textContent).length > 0;
    });
    // Text is in its area while the answer is still streaming.
    assert.equal(await page.locator(".message.assistant").last().getAttribute("aria-busy"), "true");
    assert.equal(await page.isVisible("#stop"), true);
    await page.click("#stop");
    await idle(page);
    assert.match(await last(page, ".stats").textContent(), /^stopped/);
    assert.equal(await page.isVisible("#stop"), false);
    let busy = -1;
    for (let i = 0; i < 40 && busy !== 0; i++) {
      const text = await (await fetch(RANDOM_URL + "/metrics")).text();
      busy = Number(text.match(/^qwen3_slots_busy (\d+)/m)[1]);
      if (busy !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(busy, 0, "the server still generates after Stop");

    // Compare: one prompt to the base and the adapter, side by side.
    await page.fill("#max_tokens", "12");
    await page.check("#compare-toggle");
    assert.deepEqual(await page.locator("#compare-models input:checked").evaluateAll((els) => els.map((e) => e.value)), ["qwen3-tiny", "medical-lora"]);
    const n = bodies.length;
    await sendMessage(page, "Which is better?");
    await idle(page);
    const cols = page.locator(".compare-column");
    assert.equal(await cols.count(), 2);
    assert.deepEqual(await cols.evaluateAll((els) => els.map((e) => e.dataset.model)), ["qwen3-tiny", "medical-lora"]);
    assert.deepEqual(bodies.slice(n).map((b) => b.model).sort(), ["medical-lora", "qwen3-tiny"]);
    for (let i = 0; i < 2; i++) {
      const col = cols.nth(i);
      const text = (await col.locator(".content").textContent()) + (await col.locator(".reasoning").textContent());
      assert.ok(text.length > 0, "column " + i + " is empty");
      assert.match(await col.locator(".stats").textContent(), /tokens/);
    }
    await shot(page, "compare");

    // Dark mode follows the system.
    await page.emulateMedia({ colorScheme: "dark" });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), "rgb(20, 22, 26)");
    await shot(page, "compare-dark");
  });

  await withPage(async (page) => {
    await page.goto(RANDOM_URL);
    await page.waitForSelector("#model option[value=medical-lora]", { state: "attached" });
    // On a phone the conversation list is off-screen until asked for.
    assert.equal(await page.isVisible("#open-sidebar"), true);
    const box = await page.locator("#sidebar").boundingBox();
    assert.ok(box.x + box.width <= 0, "the sidebar covers the chat on a phone");
    await page.click("#settings-toggle");
    await page.fill("#max_tokens", "24");
    await page.click("#settings-toggle");
    await sendMessage(page, "Hi from a phone");
    await idle(page);
    await shot(page, "phone");
    await page.click("#open-sidebar");
    await page.waitForFunction(() => document.querySelector("#sidebar").getBoundingClientRect().x >= 0);
    // Every control has a name for screen readers.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll("button, input, select, textarea")]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim()).map((el) => el.id || el.outerHTML));
    assert.deepEqual(unnamed, []);
  }, { width: 390, height: 844 });
});

// createBatch uploads lines and creates a batch on the chain server.
async function createBatch(lines) {
  const auth = { Authorization: "Bearer " + API_KEY };
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([lines.map((l) => JSON.stringify(l)).join("\n") + "\n"]), "in.jsonl");
  let resp = await fetch(CHAIN_URL + "/v1/files", { method: "POST", headers: auth, body: form });
  assert.equal(resp.status, 200, await resp.clone().text());
  const file = await resp.json();
  resp = await fetch(CHAIN_URL + "/v1/batches", {
    method: "POST", headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
  });
  assert.equal(resp.status, 200, await resp.clone().text());
  return (await resp.json()).id;
}

test("batches panel: status, progress bar, counts, output download", async () => {
  const line = (id) => ({ custom_id: id, method: "POST", url: "/v1/chat/completions",
    body: { model: "tiny-chain", messages: [{ role: "user", content: "Hi" }] } });
  const good = await createBatch([line("one"), line("two")]);
  const bad = await createBatch([line("dup"), line("dup")]);
  await withPage(async (page) => {
    await page.goto(CHAIN_URL);
    await page.waitForSelector("#notice:not([hidden])");
    await page.fill("#api-key", API_KEY);
    await page.press("#api-key", "Tab");
    await page.waitForSelector("#notice", { state: "hidden" });
    await page.click("#batches-toggle");
    // The panel refreshes itself until both batches are over.
    const row = (id) => page.locator(`#batch-rows tr[data-batch="${id}"]`);
    await row(good).locator(".status-completed").waitFor({ timeout: 60000 });
    await row(bad).locator(".status-failed").waitFor({ timeout: 60000 });
    assert.equal(await row(good).locator(".counts").textContent(), "2 / 2");
    const bar = await row(good).locator("progress").evaluate((p) => [p.value, p.max]);
    assert.deepEqual(bar, [2, 2]);
    assert.equal(await row(bad).locator("a").count(), 0, "a failed batch has no result files");
    assert.match(await row(bad).locator(".status").getAttribute("title"), /^line 2: .*dup/, "a failed batch's status tells why");
    await shot(page, "batches");
    const [dl] = await Promise.all([page.waitForEvent("download"), row(good).locator("a.file-output").click()]);
    const lines = readFileSync(await dl.path(), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.custom_id).sort(), ["one", "two"]);
    for (const l of lines) assert.equal(l.response.body.choices[0].message.content, "Hello!");
  });
});
