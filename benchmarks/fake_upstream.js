// Fake upstream for the benchmarks. Node, not trio: it must never be the bottleneck.
//
//   POST /v1/chat/completions  OpenAI chat completions, stream or not (what occ translates)
//   POST /v1/messages          Anthropic Messages, stream or not: the "floor", the same answer given directly
//
// The answer's shape travels inside the request so that it survives a proxy: a marker anywhere in the body,
// `bench:deltas=50,delay=5,agentic=1` (occ forwards the prompt, not our headers). A header
// `x-bench-scenario: deltas=50,delay=5,agentic=1` overrides it, for trying the fake by hand.
//   deltas   text deltas in the answer
//   delay    milliseconds between deltas (0 = a burst)
//   agentic  1 = 10 reasoning deltas, the text, then two tool calls streamed as 3 argument fragments each
// Both endpoints produce the same content (text "tok0 tok1 ..."), so the load client can check it end to end.
//
// usage: node fake_upstream.js [PORT]   (prints the port it listens on)
"use strict";
const http = require("http");

const MARKER = /bench:deltas=(\d+),delay=(\d+),agentic=(\d)/;
const REASONING = 10;
const TOOL_FRAGMENTS = (t) => (t === 0 ? ['{"file_path":', '"/src/mod.py"', "}"] : ['{"command":', '"ls -la /src"', "}"]);
const TOOL_NAMES = ["Read", "Bash"];

function scenario(req, raw) {
  const m = MARKER.exec(req.headers["x-bench-scenario"] ? "bench:" + req.headers["x-bench-scenario"] : raw);
  return m ? { deltas: +m[1], delay: +m[2], agentic: m[3] === "1" } : { deltas: 50, delay: 5, agentic: false };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (p) => Array.from({ length: p.deltas }, (_, i) => "tok" + i + " ").join("");

// The one script both endpoints follow: a list of steps, each one upstream write followed by the pause.
function* steps(p) {
  if (p.agentic) for (let i = 0; i < REASONING; i++) yield ["reasoning", "think " + i + " "];
  for (let i = 0; i < p.deltas; i++) yield ["text", "tok" + i + " "];
  if (p.agentic) {
    for (let t = 0; t < 2; t++) {
      yield ["tool", t];
      for (const frag of TOOL_FRAGMENTS(t)) yield ["args", t, frag];
    }
  }
}

// Paced on an absolute schedule (step i is due at start + i * delay), like a model producing tokens at its own
// rate: a busy event loop or a slow reader delays one write, never the whole rest of the stream.
async function play(res, p, write) {
  const start = performance.now();
  let due = 0;
  for (const step of steps(p)) {
    if (res.destroyed) return false;
    if (write(step) && p.delay) {
      due += p.delay;
      const wait = start + due - performance.now();
      if (wait >= 1) await sleep(wait);
    }
  }
  return !res.destroyed;
}

const STREAM_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };

function sendJson(res, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

async function chat(res, body, p) {
  const usage = { prompt_tokens: 5000, completion_tokens: p.deltas, prompt_tokens_details: { cached_tokens: 0 } };
  const calls = p.agentic ? [0, 1].map((t) => ({ id: "call_" + t, type: "function",
    function: { name: TOOL_NAMES[t], arguments: TOOL_FRAGMENTS(t).join("") } })) : undefined;
  const finish = p.agentic ? "tool_calls" : "stop";
  if (!body.stream) {
    const message = { role: "assistant", content: text(p), tool_calls: calls };
    if (p.agentic) message.reasoning_content = "thinking";
    return sendJson(res, { id: "c1", object: "chat.completion", model: body.model,
      choices: [{ index: 0, message, finish_reason: finish }], usage });
  }
  res.writeHead(200, STREAM_HEADERS);
  const head = '{"id":"c1","object":"chat.completion.chunk","model":"bench-model","choices":[{"index":0,"delta":';
  const chunk = (delta, fin) => res.write("data: " + head + JSON.stringify(delta) + ',"finish_reason":' +
    (fin ? '"' + fin + '"' : "null") + "}]}\n\n");
  chunk({ role: "assistant", content: "" });
  const ok = await play(res, p, ([kind, a, b]) => {
    if (kind === "reasoning") chunk({ reasoning_content: a });
    else if (kind === "text") chunk({ content: a });
    else if (kind === "tool") {
      chunk({ tool_calls: [{ index: a, id: "call_" + a, type: "function", function: { name: TOOL_NAMES[a], arguments: "" } }] });
      return false;
    } else chunk({ tool_calls: [{ index: a, function: { arguments: b } }] });
    return true;
  });
  if (!ok) return;
  chunk({}, finish);
  res.write("data: " + JSON.stringify({ id: "c1", object: "chat.completion.chunk", choices: [], usage }) + "\n\n");
  res.end("data: [DONE]\n\n");
}

async function messages(res, body, p) {
  const usage = { input_tokens: 5000, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  const stop = p.agentic ? "tool_use" : "end_turn";
  if (!body.stream) {
    const content = [];
    if (p.agentic) content.push({ type: "thinking", thinking: "thinking", signature: "sig" });
    content.push({ type: "text", text: text(p) });
    if (p.agentic) {
      for (const t of [0, 1]) content.push({ type: "tool_use", id: "toolu_" + t, name: TOOL_NAMES[t],
        input: JSON.parse(TOOL_FRAGMENTS(t).join("")) });
    }
    return sendJson(res, { id: "msg_1", type: "message", role: "assistant", model: body.model, content,
      stop_reason: stop, stop_sequence: null, usage: { ...usage, output_tokens: p.deltas } });
  }
  res.writeHead(200, STREAM_HEADERS);
  const ev = (type, rest) => res.write("event: " + type + '\ndata: {"type":"' + type + '"' + rest + "}\n\n");
  const delta = (d) => ev("content_block_delta", ',"index":' + index + ',"delta":' + JSON.stringify(d));
  let index = -1, open = null;
  const openBlock = (kind, block) => {
    if (open !== null) ev("content_block_stop", ',"index":' + index);
    index++;
    open = kind;
    ev("content_block_start", ',"index":' + index + ',"content_block":' + JSON.stringify(block));
  };
  ev("message_start", ',"message":' + JSON.stringify({ id: "msg_1", type: "message", role: "assistant",
    model: body.model, content: [], stop_reason: null, stop_sequence: null, usage }));
  const ok = await play(res, p, ([kind, a, b]) => {
    if (kind === "reasoning") {
      if (open !== "thinking") openBlock("thinking", { type: "thinking", thinking: "", signature: "" });
      delta({ type: "thinking_delta", thinking: a });
    } else if (kind === "text") {
      if (open === "thinking") delta({ type: "signature_delta", signature: "sig" });
      if (open !== "text") openBlock("text", { type: "text", text: "" });
      delta({ type: "text_delta", text: a });
    } else if (kind === "tool") {
      openBlock("tool", { type: "tool_use", id: "toolu_" + a, name: TOOL_NAMES[a], input: {} });
      return false;
    } else delta({ type: "input_json_delta", partial_json: b });
    return true;
  });
  if (!ok) return;
  if (open !== null) ev("content_block_stop", ',"index":' + index);
  ev("message_delta", ',"delta":{"stop_reason":"' + stop + '","stop_sequence":null},"usage":{"output_tokens":' +
    p.deltas + "}");
  res.end('event: message_stop\ndata: {"type":"message_stop"}\n\n');
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks).toString();
    let body;
    try { body = JSON.parse(raw || "{}"); } catch { res.writeHead(400); res.end(); return; }
    const path = req.url.split("?")[0];
    const handler = path === "/v1/chat/completions" ? chat : path === "/v1/messages" ? messages : null;
    if (!handler) { res.writeHead(404); res.end(); return; }
    handler(res, body, scenario(req, raw)).catch(() => res.destroy());
  });
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 130000;
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => console.log(server.address().port));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
