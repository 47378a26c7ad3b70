// The official OpenAI Node SDK against a running qwen3-server serving the
// chain test model (whose output is known: "<think>Let me think.</think>
// \n\nHello!" after the generation prompt). BASE_URL points at the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.env.BASE_URL;
assert.ok(baseURL, "BASE_URL must be set");
const client = new OpenAI({ baseURL, apiKey: "test-key", maxRetries: 0 });

test("models list", async () => {
  const page = await client.models.list();
  assert.deepEqual(page.data.map((m) => m.id), ["tiny-chain"]);
});

test("chat: reasoning and answer in separate fields", async () => {
  const r = await client.chat.completions.create({
    model: "tiny-chain",
    messages: [{ role: "user", content: "Hi" }],
  });
  const m = r.choices[0].message;
  assert.equal(m.content, "Hello!");
  assert.equal(m.reasoning_content, "Let me think.");
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 4);
});

test("chat: assistant prefill continued inside the reasoning, with a thinking budget", async () => {
  const r = await client.chat.completions.create({
    model: "tiny-chain",
    messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "<think>\nLet me" }],
    add_generation_prompt: false,
    continue_final_message: true,
    thinking_budget: 1,
  });
  const m = r.choices[0].message;
  assert.equal(m.reasoning_content, " think");
  assert.equal(m.content, "Hello!");
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 1);
});

test("chat streaming with thinking off", async () => {
  const stream = await client.chat.completions.create({
    model: "tiny-chain",
    messages: [{ role: "user", content: "Hi" }],
    stream: true,
    stream_options: { include_usage: true },
    chat_template_kwargs: { enable_thinking: false },
  });
  let content = "";
  let reasoning = "";
  let usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      content += c.delta.content ?? "";
      reasoning += c.delta.reasoning_content ?? "";
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(content, "Hello!");
  assert.equal(reasoning, "");
  assert.equal(usage.completion_tokens, 3);
});

test("completions with a prompt array", async () => {
  const r = await client.completions.create({
    model: "tiny-chain",
    prompt: ["first", "second", "third"],
    max_tokens: 4,
  });
  assert.equal(r.choices.length, 3);
  r.choices.forEach((c, i) => assert.equal(c.index, i));
});

test("errors arrive as OpenAI errors", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "tiny-chain", messages: [], max_tokens: 1 }),
    (err) => err instanceof OpenAI.BadRequestError && /messages/.test(err.message),
  );
});
