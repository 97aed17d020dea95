// probe.mjs: Node's own HTTP clients against faultserver (built-ins only).
//
//   node probe.mjs CLIENT URL SCENARIO [URL SCENARIO ...]
//
// CLIENT is `fetch` (the built-in fetch, undici) or `http` (node:http with
// an Agent({keepAlive: true, maxSockets: 2})). Each URL SCENARIO pair is a "run" with its
// own pool; the runs go at once. One JSON line per request on standard output:
//   {"run":0,"req":"/1","method":"GET","status":200,"ms":12}
//   {"run":0,"req":"/2","method":"GET","error":"TypeError","message":"fetch failed",
//    "cause":{"error":"SocketError","message":"other side closed","code":"UND_ERR_SOCKET"},"ms":3}
// "at" is when the request ended, in ms since the process started.
// "error", "message" and "code" are the error's name, message and code; "cause" the same of
// its cause (fetch puts the real error there).
//
// fetch: undici's Agent with connections: 2 per origin, connect timeout 1 s, headers
// timeout 2 s. Node exposes no undici module, so the Agent class is taken from the global
// dispatcher that fetch itself installs (a `data:` fetch makes it).
// node:http: keepAlive, maxSockets 2, `timeout: 2000` (socket idle), and on a timeout
// `req.destroy()`, as Node's documentation says to do; node:http has no connect timeout.
//
// Scenarios as in D504Probe.java (a fetch after another waits for the next turn of the event
// loop, see `next` below), except burst6: neither client has a timeout for the wait
// for a connection, only an AbortSignal for the whole request, so the first two requests
// take both connections, then four more with AbortSignal.timeout(500) wait for one in vain.

import http from "node:http";

const POOL = 2;
const LONG_MS = 5000;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function describe(err) {
  const d = { error: err?.name ?? String(err), message: err?.message ?? String(err) };
  if (err?.code !== undefined) d.code = err.code;
  return d;
}

// --- fetch -------------------------------------------------------------------------------

async function undiciAgent() {
  const key = Symbol.for("undici.globalDispatcher.1");
  if (globalThis[key] === undefined) {
    await fetch("data:,init"); // installs the global dispatcher
  }
  const Agent = globalThis[key].constructor;
  return () => new Agent({ connections: POOL, connect: { timeout: 1000 }, headersTimeout: 2000 });
}

function fetchClient(makeAgent) {
  const dispatcher = makeAgent();
  return {
    async send(url, method, signal) {
      const init = { method, dispatcher, signal };
      if (method === "POST") init.body = "order=1";
      const response = await fetch(url, init);
      await response.arrayBuffer();
      return response.status;
    },
    close: () => dispatcher.close(),
    // undici gives a connection back to its pool a tick after the body ends: a fetch made
    // in the same tick finds it busy and opens another connection (so two fetches in a row
    // alternate between two connections); the next one waits for the next turn of the loop
    next: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

// --- node:http ---------------------------------------------------------------------------

function httpClient() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: POOL });
  return {
    send(url, method, signal) {
      return new Promise((resolve, reject) => {
        const req = http.request(url, { method, agent, signal, timeout: 2000 }, (res) => {
          res.on("data", () => {});
          res.on("end", () => resolve(res.statusCode));
          res.on("error", reject);
        });
        req.on("timeout", () => req.destroy());
        req.on("error", reject);
        req.end(method === "POST" ? "order=1" : undefined);
      });
    },
    close: async () => agent.destroy(),
    next: async () => {}, // the Agent has the socket back when `end` is emitted
  };
}

// --- scenarios ---------------------------------------------------------------------------

async function send(client, run, base, method, path, signal) {
  const start = performance.now();
  const line = { run, req: path, method };
  try {
    line.status = await client.send(base + path, method, signal);
  } catch (err) {
    Object.assign(line, describe(err));
    if (err?.cause !== undefined) line.cause = describe(err.cause);
  }
  line.ms = Math.round(performance.now() - start);
  line.at = Math.round(performance.now()); // since the process started: the order of events
  emit(line);
}

async function runScenario(newClient, run, base, scenario) {
  const long = () => AbortSignal.timeout(LONG_MS);
  let c;
  switch (scenario) {
    case "get":
      c = newClient();
      await send(c, run, base, "GET", "/get", long());
      break;
    case "get2":
    case "post2": {
      const method = scenario === "get2" ? "GET" : "POST";
      c = newClient();
      await send(c, run, base, method, "/1", long());
      await c.next();
      await send(c, run, base, method, "/2", long());
      break;
    }
    case "burst6": {
      c = newClient();
      const first = [0, 1].map((i) => send(c, run, base, "GET", `/pool-${i}`, long()));
      // the first two hold both connections once the backend has their requests (1 s answers)
      await new Promise((resolve) => setTimeout(resolve, 200));
      const rest = [2, 3, 4, 5].map((i) => send(c, run, base, "GET", `/pool-${i}`, AbortSignal.timeout(500)));
      await Promise.all([...first, ...rest]);
      break;
    }
    case "seq10":
      c = newClient();
      for (let i = 0; i < 10; i++) {
        await send(c, run, base, "GET", `/seq-${i}`, long());
        await c.next();
      }
      break;
    case "race20":
    case "race20post": {
      const method = scenario === "race20" ? "GET" : "POST";
      for (let i = 0; i < 20; i++) {
        const t = newClient();
        await send(t, run, base, method, `/w-${i}`, long());
        await t.next();
        await send(t, run, base, method, `/r-${i}`, long());
        await t.close();
      }
      break;
    }
    default:
      emit({ run, req: "-", method: "-", error: "usage", message: `unknown scenario: ${scenario}` });
  }
  if (c !== undefined) await c.close();
}

async function main() {
  const [kind, ...args] = process.argv.slice(2);
  if (!["fetch", "http"].includes(kind) || args.length === 0 || args.length % 2 !== 0) {
    process.stderr.write("usage: node probe.mjs fetch|http URL SCENARIO [URL SCENARIO ...]\n");
    process.exit(2);
  }
  let newClient = httpClient;
  if (kind === "fetch") {
    const makeAgent = await undiciAgent();
    newClient = () => fetchClient(makeAgent);
  }
  const runs = [];
  for (let i = 0; i < args.length; i += 2) runs.push(runScenario(newClient, i / 2, args[i], args[i + 1]));
  await Promise.all(runs);
  process.exit(0);
}

main();
