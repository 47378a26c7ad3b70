// The Batch API through the official OpenAI Node SDK: files.create →
// batches.create → poll → files.content, cancel, list pages, and another
// key's view. BASE_URL points at a qwen3-server serving the chain test
// model with API keys test-key and other-key and batch.data_dir set.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile, NotFoundError } from "openai";

const baseURL = process.env.BASE_URL;
assert.ok(baseURL, "BASE_URL must be set");
const client = new OpenAI({ baseURL, apiKey: "test-key", maxRetries: 0 });
const other = new OpenAI({ baseURL, apiKey: "other-key", maxRetries: 0 });

const line = (id, content = "Hi") => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions",
  body: { model: "tiny-chain", messages: [{ role: "user", content }] } });

async function upload(lines) {
  return client.files.create({ file: await toFile(Buffer.from(lines.join("\n") + "\n"), "in.jsonl"), purpose: "batch" });
}

async function poll(id, done = (b) => ["completed", "failed", "expired", "cancelled"].includes(b.status)) {
  for (let i = 0; i < 600; i++) {
    const b = await client.batches.retrieve(id);
    if (done(b)) return b;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("batch " + id + " did not finish");
}

test("files.create → batches.create → poll → download", async () => {
  const file = await upload([line("a"), line("b"), line("c")]);
  assert.equal(file.purpose, "batch");
  assert.equal(file.object, "file");
  const created = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { run: "node" } });
  assert.equal(created.status, "validating");
  assert.deepEqual(created.metadata, { run: "node" });
  const b = await poll(created.id);
  assert.equal(b.status, "completed");
  assert.deepEqual(b.request_counts, { total: 3, completed: 3, failed: 0 });
  assert.equal(b.error_file_id, null);
  const text = await (await client.files.content(b.output_file_id)).text();
  const out = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(out.map((o) => o.custom_id).sort(), ["a", "b", "c"]);
  for (const o of out) {
    assert.equal(o.response.status_code, 200);
    assert.equal(o.response.body.choices[0].message.content, "Hello!");
    assert.equal(o.response.body.choices[0].message.reasoning_content, "Let me think.");
    assert.equal(o.error, null);
  }
  // The input file is listed; another key sees none of it.
  const files = await client.files.list();
  assert.ok(files.data.some((f) => f.id === file.id));
  assert.equal((await other.files.list()).data.some((f) => f.id === file.id), false);
  await assert.rejects(other.files.retrieve(file.id), NotFoundError);
  await assert.rejects(other.batches.retrieve(b.id), NotFoundError);
  await assert.rejects(other.files.content(b.output_file_id), NotFoundError);
  const deleted = await client.files.delete(file.id);
  assert.equal(deleted.deleted, true);
});

test("a validation failure names the lines", async () => {
  const file = await upload([line("x"), "{oops", line("x")]);
  const b = await poll((await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })).id);
  assert.equal(b.status, "failed");
  assert.deepEqual(b.errors.data.map((e) => [e.line, e.code]), [[2, "invalid_json_line"], [3, "duplicate_custom_id"]]);
});

test("cancel and list pages", async () => {
  const many = Array.from({ length: 200 }, (_, i) => line("l" + i));
  const file = await upload(many);
  const b = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const c = await client.batches.cancel(b.id);
  assert.ok(["cancelling", "cancelled"].includes(c.status));
  const end = await poll(b.id);
  assert.equal(end.status, "cancelled");
  assert.ok(end.request_counts.completed < 200);
  const first = await client.batches.list({ limit: 1 });
  assert.equal(first.data[0].id, b.id);
  assert.equal(first.has_more, true);
  const ids = [];
  for await (const x of client.batches.list({ limit: 1 })) ids.push(x.id);
  assert.ok(ids.length >= 3 && ids[0] === b.id && new Set(ids).size === ids.length);
});
