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

test("chat logprobs: every generated token, reasoning included, streamed and not", async () => {
  const req = {
    model: "tiny-chain",
    messages: [{ role: "user", content: "Hi" }],
    logprobs: true,
    top_logprobs: 2,
  };
  const r = await client.chat.completions.create(req);
  const content = r.choices[0].logprobs.content;
  assert.equal(content.map((c) => c.token).join(""), "<think>Let me think.</think>\n\nHello!");
  for (const c of content) {
    assert.deepEqual(c.bytes, [...Buffer.from(c.token, "utf8")]);
    assert.equal(c.top_logprobs.length, 2);
    assert.equal(c.top_logprobs[0].token, c.token);
    assert.ok(c.logprob <= 0 && c.logprob > -1e-3, `${c.token}: ${c.logprob}`);
  }
  const stream = await client.chat.completions.create({ ...req, stream: true });
  const streamed = [];
  for await (const chunk of stream) {
    for (const c of chunk.choices) streamed.push(...(c.logprobs?.content ?? []));
  }
  assert.deepEqual(streamed.map((c) => c.token), content.map((c) => c.token));
  await assert.rejects(
    client.chat.completions.create({ ...req, logprobs: false }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "top_logprobs",
  );
});

test("completions logprobs with echo: the prompt scored, first token null", async () => {
  const prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  const score = await client.completions.create({ model: "tiny-chain", prompt, max_tokens: 0, echo: true, logprobs: 1 });
  const s = score.choices[0];
  assert.equal(s.text, prompt);
  assert.equal(s.finish_reason, "length");
  assert.equal(score.usage.completion_tokens, 0);
  assert.equal(s.logprobs.tokens.join(""), prompt);
  assert.equal(s.logprobs.token_logprobs[0], null);
  assert.equal(s.logprobs.top_logprobs[0], null);
  assert.equal(s.logprobs.tokens.length, score.usage.prompt_tokens);
  const r = await client.completions.create({ model: "tiny-chain", prompt, max_tokens: 3, echo: true, logprobs: 0 });
  const c = r.choices[0];
  assert.equal(c.text, prompt + "<think>Let me");
  assert.equal(c.logprobs.tokens.join(""), c.text);
  assert.deepEqual(c.logprobs.token_logprobs.slice(0, s.logprobs.tokens.length), s.logprobs.token_logprobs);
  assert.deepEqual(Object.keys(c.logprobs.top_logprobs.at(-1)), [" me"]);
  await assert.rejects(
    client.completions.create({ model: "tiny-chain", prompt, logprobs: 21 }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "logprobs",
  );
});
