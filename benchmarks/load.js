// Load client: speaks Anthropic, validates the SSE stream's event order, reports latency figures as JSON.
// usage: node load.js URL CONCURRENCY TOTAL STREAM(0/1) XBENCH PROMPT_BYTES TOOLS
"use strict";
const http = require("http");
const [url, conc, total, stream, xbench, promptBytes, tools] = process.argv.slice(2);
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
const toolDefs = [];
for (let i = 0; i < Number(tools || 0); i++) {
  toolDefs.push({ name: "Tool" + i, description: "A tool number " + i + " ".repeat(200), input_schema: { type: "object", properties: { a: { type: "string" }, b: { type: "integer" } }, required: ["a"] } });
}
const body = JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 1024, stream: stream === "1", messages: [{ role: "user", content: "x".repeat(Number(promptBytes || 20)) }], ...(toolDefs.length ? { tools: toolDefs } : {}) });
const now = () => Number(process.hrtime.bigint()) / 1e6;
const lat = [], ttfc = [], gaps = [];
let errors = 0, done = 0, started = 0;

function one() {
  return new Promise((resolve) => {
    const t0 = now();
    const req = http.request({ hostname: u.hostname, port: u.port, path: "/v1/messages", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-bench": xbench, "x-api-key": "bench" } }, (res) => {
      let buf = "", first = null, last = null, names = [];
      res.setEncoding("utf8");
      res.on("data", (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i); buf = buf.slice(i + 2);
          const m = /^event: (\S+)/.exec(frame);
          const name = m ? m[1] : "";
          if (name === "ping") continue;
          names.push(name);
          if (name === "content_block_delta") {
            const t = now();
            if (first === null) first = t; else gaps.push(t - last);
            last = t;
          }
        }
      });
      res.on("end", () => {
        const t = now();
        let ok = res.statusCode === 200;
        if (stream === "1") {
          ok = ok && names[0] === "message_start" && names[names.length - 1] === "message_stop";
          let open = -1, next = 0;
          for (const n of names) { if (n === "content_block_start") { if (open !== -1) ok = false; open = next++; } else if (n === "content_block_stop") open = -1; }
          if (first !== null) ttfc.push(first - t0);
        }
        if (!ok) errors++;
        lat.push(t - t0); done++;
        resolve();
      });
    });
    req.on("error", () => { errors++; done++; resolve(); });
    req.end(body);
  });
}

async function worker() { while (started < Number(total)) { started++; await one(); } }
(async () => {
  const t0 = now();
  await Promise.all(Array.from({ length: Number(conc) }, worker));
  const secs = (now() - t0) / 1000;
  const pct = (a, q) => { if (!a.length) return null; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
  console.log(JSON.stringify({ requests: done, errors, rps: done / secs, p50: pct(lat, 0.5), p95: pct(lat, 0.95), p99: pct(lat, 0.99), ttfc50: pct(ttfc, 0.5), gap50: pct(gaps, 0.5), gap99: pct(gaps, 0.99) }));
  agent.destroy();
})();
