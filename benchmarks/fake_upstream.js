// A fast fake upstream for benchmarks (Node, not trio: it must never be the bottleneck).
// POST /v1/chat/completions  -> OpenAI chat completions (stream or not)
// POST /v1/messages          -> Anthropic Messages (stream or not): the "floor"
// Shape per request from the header x-bench: "deltas=50;delay=5;agentic=0".
"use strict";
const http = require("http");

function params(req) {
  const out = { deltas: 50, delay: 5, agentic: 0 };
  for (const kv of (req.headers["x-bench"] || "").split(";")) {
    const [k, v] = kv.split("=");
    if (k in out) out[k] = Number(v);
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function chat(res, body, p) {
  if (!body.stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id: "c", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "x".repeat(p.deltas * 4) }, finish_reason: "stop" }], usage: { prompt_tokens: 100, completion_tokens: p.deltas } }));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  const send = (o) => res.write("data: " + JSON.stringify(o) + "\n\n");
  const ch = (delta, finish) => ({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish || null }] });
  if (p.agentic) {
    for (let i = 0; i < 10; i++) { send(ch({ reasoning_content: "think " + i + " " })); if (p.delay) await sleep(p.delay); }
  }
  for (let i = 0; i < p.deltas; i++) { send(ch({ content: "tok" + i + " " })); if (p.delay) await sleep(p.delay); }
  if (p.agentic) {
    for (let t = 0; t < 2; t++) {
      send(ch({ tool_calls: [{ index: t, id: "call_" + t, type: "function", function: { name: "Read", arguments: "" } }] }));
      for (const frag of ['{"file_path":', '"/src/mod' + t + '.py"', "}"]) {
        send(ch({ tool_calls: [{ index: t, function: { arguments: frag } }] }));
        if (p.delay) await sleep(p.delay);
      }
    }
  }
  send(ch({}, p.agentic ? "tool_calls" : "stop"));
  send({ id: "c", choices: [], usage: { prompt_tokens: 100, completion_tokens: p.deltas } });
  res.end("data: [DONE]\n\n");
}

async function messages(res, body, p) {
  const usage = { input_tokens: 100, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  if (!body.stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id: "msg_1", type: "message", role: "assistant", model: body.model, content: [{ type: "text", text: "x".repeat(p.deltas * 4) }], stop_reason: "end_turn", stop_sequence: null, usage }));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  const ev = (o) => res.write("event: " + o.type + "\ndata: " + JSON.stringify(o) + "\n\n");
  ev({ type: "message_start", message: { id: "msg_1", type: "message", role: "assistant", model: body.model, content: [], stop_reason: null, stop_sequence: null, usage } });
  let idx = 0;
  if (p.agentic) {
    ev({ type: "content_block_start", index: idx, content_block: { type: "thinking", thinking: "", signature: "" } });
    for (let i = 0; i < 10; i++) { ev({ type: "content_block_delta", index: idx, delta: { type: "thinking_delta", thinking: "think " + i + " " } }); if (p.delay) await sleep(p.delay); }
    ev({ type: "content_block_delta", index: idx, delta: { type: "signature_delta", signature: "sig" } });
    ev({ type: "content_block_stop", index: idx++ });
  }
  ev({ type: "content_block_start", index: idx, content_block: { type: "text", text: "" } });
  for (let i = 0; i < p.deltas; i++) { ev({ type: "content_block_delta", index: idx, delta: { type: "text_delta", text: "tok" + i + " " } }); if (p.delay) await sleep(p.delay); }
  ev({ type: "content_block_stop", index: idx++ });
  if (p.agentic) {
    for (let t = 0; t < 2; t++) {
      ev({ type: "content_block_start", index: idx, content_block: { type: "tool_use", id: "toolu_" + t, name: "Read", input: {} } });
      for (const frag of ['{"file_path":', '"/src/mod' + t + '.py"', "}"]) {
        ev({ type: "content_block_delta", index: idx, delta: { type: "input_json_delta", partial_json: frag } });
        if (p.delay) await sleep(p.delay);
      }
      ev({ type: "content_block_stop", index: idx++ });
    }
  }
  ev({ type: "message_delta", delta: { stop_reason: p.agentic ? "tool_use" : "end_turn", stop_sequence: null }, usage: { output_tokens: p.deltas } });
  ev({ type: "message_stop" });
  res.end();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body = {};
    try { body = JSON.parse(Buffer.concat(chunks).toString() || "{}"); } catch (e) { /* empty */ }
    const p = params(req);
    const path = req.url.split("?")[0];
    const handler = path === "/v1/chat/completions" ? chat : path === "/v1/messages" ? messages : null;
    if (!handler) { res.writeHead(404); res.end(); return; }
    handler(res, body, p).catch(() => res.destroy());
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(server.address().port);
});
