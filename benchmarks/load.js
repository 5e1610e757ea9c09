// Load client for the benchmarks: speaks Anthropic Messages, checks every answer, reports figures as JSON.
//
// usage: node load.js '{"url": "http://127.0.0.1:PORT", "concurrency": 32, "requests": 640, "stream": true,
//                       "deltas": 50, "delay": 5, "agentic": false, "promptBytes": 200, "tools": 0}'
//   optional: "warmup" (requests before measuring, default one per connection), "timeoutMs" (per request,
//   default 60000), "chat": true (hit the fake's chat endpoint instead,
//   only counting chunks: used to measure the fake itself)
//
// Each answer is checked, not just timed: a stream must follow the Anthropic grammar (message_start first,
// block indices 0,1,2,... each started, fed deltas of its own type and stopped before the next, one
// message_delta, message_stop last, nothing after) and reassemble to exactly the content the fake upstream
// was asked for (text, thinking when agentic, two tool calls with their arguments, stop_reason). Any
// difference counts as an error, with the first few reasons reported.
"use strict";
const http = require("http");

const spec = JSON.parse(process.argv[2]);
const url = new URL(spec.url);
const timeoutMs = spec.timeoutMs || 60000;
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency, maxFreeSockets: spec.concurrency });
const now = () => Number(process.hrtime.bigint()) / 1e6;

// What the fake upstream answers (see fake_upstream.js), reassembled.
const want = {
  text: Array.from({ length: spec.deltas }, (_, i) => "tok" + i + " ").join(""),
  stop: spec.agentic ? "tool_use" : "end_turn",
  tools: spec.agentic ? [["Read", { file_path: "/src/mod.py" }], ["Bash", { command: "ls -la /src" }]] : [],
};

function requestBody() {
  const marker = `bench:deltas=${spec.deltas},delay=${spec.delay},agentic=${spec.agentic ? 1 : 0}`;
  const filler = (n) => "The quick brown fox reads the repository and plans the next edit. ".repeat(Math.ceil(n / 68)).slice(0, n);
  const bytes = spec.promptBytes ?? 200;
  if (spec.chat) {
    return { model: "bench-model", stream: !!spec.stream, messages: [{ role: "user", content: marker + " " + filler(bytes) }] };
  }
  const body = { model: "claude-sonnet-4-5", max_tokens: 32000, stream: !!spec.stream,
    messages: [{ role: "user", content: [{ type: "text", text: marker + " " + filler(bytes - Math.floor(bytes * 0.8)) }] }] };
  if (bytes > 4000) body.system = [{ type: "text", text: filler(Math.floor(bytes * 0.8)) }];
  if (spec.agentic) body.thinking = { type: "enabled", budget_tokens: 16000 };
  if (spec.tools) {
    const names = ["Read", "Bash", "Edit", "Write", "Grep", "Glob"];
    body.tools = Array.from({ length: spec.tools }, (_, i) => ({
      name: names[i] || "Tool" + i,
      description: filler(300),
      input_schema: { type: "object", properties: { file_path: { type: "string", description: "Absolute path" },
        command: { type: "string" }, limit: { type: "integer" } }, required: [] },
    }));
  }
  return body;
}

const payload = JSON.stringify(requestBody());
const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(payload),
  "anthropic-version": "2023-06-01", "x-api-key": "bench" };
// spec.claude_code_headers: the rest of the head the real Claude Code CLI sends (2.1.331, ../shared/
// claude-code-client.md section 2; ids are placeholders of their length), so a server pays for reading it
if (spec.claude_code_headers) Object.assign(headers, {
  "accept": "application/json", "user-agent": "claude-cli/2.1.331 (external, sdk-cli)", "x-app": "cli",
  "x-claude-code-session-id": "00000000-0000-4000-8000-000000000000",
  "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
  "anthropic-dangerous-direct-browser-access": "true", "x-stainless-lang": "js", "x-stainless-runtime": "node",
  "x-stainless-runtime-version": "v26.0.0", "x-stainless-os": "Linux", "x-stainless-arch": "x64",
  "x-stainless-package-version": "0.128.0", "x-stainless-retry-count": "0", "x-stainless-timeout": "600",
  "accept-encoding": "gzip, deflate, br, zstd",
});
const path = spec.chat ? "/v1/chat/completions" : "/v1/messages";

// Checks one Anthropic stream event by event; throws a reason on the first violation.
class StreamCheck {
  constructor() { this.state = "before"; this.blocks = []; this.open = -1; this.stop = null; }
  event(name, data) {
    if (name === "ping") return;
    const ev = JSON.parse(data);
    if (ev.type !== name) throw new Error(`event ${name} carries type ${ev.type}`);
    if (this.state === "before") {
      if (name !== "message_start") throw new Error(`${name} before message_start`);
      this.state = "blocks";
      return;
    }
    if (this.state === "done") throw new Error(`${name} after message_stop`);
    if (name === "content_block_start") {
      if (this.open !== -1) throw new Error(`block ${ev.index} starts while ${this.open} is open`);
      if (ev.index !== this.blocks.length) throw new Error(`block index ${ev.index}, expected ${this.blocks.length}`);
      if (this.state !== "blocks") throw new Error("content_block_start after message_delta");
      const b = ev.content_block;
      this.blocks.push({ type: b.type, text: "", name: b.name, json: "" });
      this.open = ev.index;
    } else if (name === "content_block_delta") {
      if (ev.index !== this.open) throw new Error(`delta for ${ev.index} while ${this.open} is open`);
      const b = this.blocks[ev.index], d = ev.delta;
      if (b.type === "text" && d.type === "text_delta") b.text += d.text;
      else if (b.type === "thinking" && d.type === "thinking_delta") b.text += d.thinking;
      else if (b.type === "thinking" && d.type === "signature_delta") b.signed = true;
      else if (b.type === "tool_use" && d.type === "input_json_delta") b.json += d.partial_json;
      else throw new Error(`${d.type} in a ${b.type} block`);
    } else if (name === "content_block_stop") {
      if (ev.index !== this.open) throw new Error(`stop for ${ev.index} while ${this.open} is open`);
      this.open = -1;
    } else if (name === "message_delta") {
      if (this.open !== -1 || this.state !== "blocks") throw new Error("message_delta out of place");
      if (typeof ev.usage?.output_tokens !== "number") throw new Error("message_delta without output_tokens");
      this.stop = ev.delta.stop_reason;
      this.state = "delta";
    } else if (name === "message_stop") {
      if (this.state !== "delta") throw new Error("message_stop without message_delta");
      this.state = "done";
    } else if (name === "error") {
      throw new Error("error event: " + data);
    }
  }
  finish() {
    if (this.state !== "done") throw new Error(`stream ended in state ${this.state}`);
    return { stop_reason: this.stop, content: this.blocks.map((b) => b.type === "tool_use"
      ? { type: "tool_use", name: b.name, input: JSON.parse(b.json || "{}") }
      : { type: b.type, [b.type === "text" ? "text" : "thinking"]: b.text }) };
  }
}

// The reassembled (or non-streamed) message must carry exactly what the fake was asked to say.
function checkMessage(msg, streamed) {
  if (msg.stop_reason !== want.stop) throw new Error(`stop_reason ${msg.stop_reason}, expected ${want.stop}`);
  const text = msg.content.filter((b) => b.type === "text").map((b) => b.text).join("");
  if (text !== want.text) throw new Error(`text differs: ${JSON.stringify(text.slice(0, 60))}...`);
  const tools = msg.content.filter((b) => b.type === "tool_use").map((b) => [b.name, b.input]);
  if (JSON.stringify(tools) !== JSON.stringify(want.tools)) throw new Error("tool calls differ: " + JSON.stringify(tools));
  const thinking = msg.content.filter((b) => b.type === "thinking").map((b) => b.thinking).join("");
  if (spec.agentic && streamed && thinking !== Array.from({ length: 10 }, (_, i) => "think " + i + " ").join("")) {
    throw new Error("thinking differs: " + JSON.stringify(thinking.slice(0, 60)));
  }
}

const latencies = [], ttfcs = [], ttftis = [], gaps = [], reasons = new Map();
let errors = 0, done = 0, started = 0, events = 0;

function fail(err) {
  errors++;
  const why = String(err && err.message ? err.message : err).slice(0, 200);
  reasons.set(why, (reasons.get(why) || 0) + 1);
}

function one() {
  return new Promise((resolve) => {
    const t0 = now();
    let settled = false;
    const settle = (err) => {
      if (settled) return;
      settled = true;
      done++;
      if (err) fail(err); else latencies.push(now() - t0);
      resolve();
    };
    const req = http.request({ hostname: url.hostname, port: url.port, path, method: "POST", agent, headers }, (res) => {
      let buf = "", first = null, last = null, firstTool = null, frames = 0;
      const check = new StreamCheck();
      const isStream = spec.stream && res.statusCode === 200;
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        if (!isStream) { buf += chunk; return; }
        buf += chunk;
        const t = now();
        let start = 0, end;
        try {
          while ((end = buf.indexOf("\n\n", start)) >= 0) {
            const frame = buf.slice(start, end);
            start = end + 2;
            events++;
            frames++;
            if (spec.chat) continue;
            const nl = frame.indexOf("\ndata: ");
            const name = frame.startsWith("event: ") && nl > 0 ? frame.slice(7, nl) : "";
            check.event(name, frame.slice(nl + 7));
            if (name === "content_block_delta") {
              if (first === null) first = t; else gaps.push(t - last);
              last = t;
              // time to first tool-input byte: the first input_json_delta that carries something
              if (firstTool === null && frame.includes('"input_json_delta","partial_json":"') &&
                  !frame.includes('"partial_json":""')) firstTool = t;
            }
          }
        } catch (err) {
          res.destroy();
          settle(err);
          return;
        }
        buf = buf.slice(start);
      });
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${buf.slice(0, 150)}`);
          if (spec.chat) {
            if (spec.stream ? frames === 0 : !JSON.parse(buf).choices) throw new Error("bad chat answer");
          } else if (isStream) {
            checkMessage(check.finish(), true);
            if (first !== null) ttfcs.push(first - t0);
            if (firstTool !== null) ttftis.push(firstTool - t0);
          } else {
            const msg = JSON.parse(buf);
            if (msg.type !== "message") throw new Error("not a message: " + buf.slice(0, 150));
            checkMessage(msg, false);
          }
          settle(null);
        } catch (err) {
          settle(err);
        }
      });
      res.on("error", settle);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", settle);
    req.end(payload);
  });
}

async function worker(limit) {
  while (started < limit) {
    started++;
    await one();
  }
}

function pct(values, q) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

(async () => {
  // Warm up first on the same keep-alive pool (one round per connection), so that the figures measure
  // requests on open connections, as a client like Claude Code sends them, not a storm of connects.
  await Promise.all(Array.from({ length: spec.concurrency }, () => worker(spec.warmup ?? spec.concurrency)));
  const warmupErrors = errors;
  for (const a of [latencies, ttfcs, ttftis, gaps]) a.length = 0;
  errors = done = started = events = 0;
  console.log(JSON.stringify({ phase: "measure" })); // run.py samples the processes' CPU from here
  const cpu0 = process.cpuUsage(), t0 = now();
  await Promise.all(Array.from({ length: spec.concurrency }, () => worker(spec.requests)));
  const ms = now() - t0, cpu = process.cpuUsage(cpu0);
  agent.destroy();
  const p = (a) => ({ p50: pct(a, 0.5), p95: pct(a, 0.95), p99: pct(a, 0.99) });
  console.log(JSON.stringify({
    requests: done, errors, warmupErrors, reasons: [...reasons].slice(0, 5), seconds: ms / 1000,
    rps: (done - errors) / (ms / 1000), latency: p(latencies), ttfc: p(ttfcs), ttfti: p(ttftis), gap: p(gaps), events,
    clientCpuShare: (cpu.user + cpu.system) / 1000 / ms,
  }));
})();
