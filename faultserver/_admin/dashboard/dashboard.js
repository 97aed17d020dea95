// faultserver's dashboard: reads the admin API (listeners, state, metrics every second;
// events over GET /events/stream) and drives it (accept mode, drop, pause, resume, panic).
// No build step and no library: plain DOM and SVG. Everything a client sent (paths, ids)
// is written with textContent, never as HTML.

const TOKEN_KEY = "faultserver.token";
/** Listeners (their counters and plots) are read every POLL_MS (under load, while the events
 * are drawn every BUSY_RENDER_MS: every BUSY_POLL_MS); the schedule (/state) and the rules'
 * counts (/metrics) every SLOW_POLL_MS, and at once after every action: each read is a
 * request to the server that also serves the data plane, and each redraws the plots. */
const POLL_MS = 1000;
const BUSY_POLL_MS = 2000;
const SLOW_POLL_MS = 3000;
/** Events kept in the page: the newest MAX_ROWS; older ones are counted as dropped. */
const MAX_ROWS = 500;
/** The plots' window: it grows from MIN_WINDOW_S to WINDOW_S as the page stays open. */
const WINDOW_S = 300;
const MIN_WINDOW_S = 60;
/** New rows are drawn in the animation frame after RENDER_MS from the first of them; under
 * load (the server skipped events for the page, or the last batch had over BUSY_BATCH), at
 * most every BUSY_RENDER_MS, so the page costs the machine little (each drawing costs about
 * as much however few rows it adds: the rows then shown are a sample anyway). Nothing is
 * drawn or parsed while the list is scrolled (paused) or the tab is hidden. */
const RENDER_MS = 150;
const BUSY_RENDER_MS = 2000;
const BUSY_BATCH = 100;
const RETRY_MS = 1000;
/** The stream is a token bucket (`?rate=STREAM_RATE&burst=STREAM_BURST`): a burst of up to
 * the rows kept is sent whole, a sustained flood is sampled at STREAM_RATE events a second;
 * the server counts what it skipped (`missed`), shown as dropped. Each event sent is one the
 * server encodes and the page reads, while the data plane shares the machine. */
const STREAM_RATE = 100;
const STREAM_BURST = MAX_ROWS;
const MODES = ["open", "refuse", "stall"];
const TYPES = [
  "accept", "request", "response", "fault", "idle_close", "max_requests_close", "peer_close",
  "mode", "phase", "drop", "reload", "reload_failed", "schedule_paused", "panic", "start",
  "reset", "error",
];
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
/** Numbers with thousands separators (toLocaleString builds a formatter per call). */
const { format: grouped } = new Intl.NumberFormat("en");

let token = sessionStorage.getItem(TOKEN_KEY);
let running = false;
/** name -> {card, history: [{t, requests, faults, open}]} */
const listeners = new Map();
/** The events kept, oldest first (at most MAX_ROWS). */
let store = [];
let incoming = [];
let renderTimer = 0;
let dropped = 0;
let missed = 0;
let paused = false;
let pendingWhilePaused = 0;
/** The last event id seen (null: none yet, so the stream starts with what happens next). */
let lastId = null;
let renderDelay = RENDER_MS;
/** Under load: the server skipped events for the page, or the last batch had over BUSY_BATCH. */
let busy = false;
let flushedAt = 0;
/** `missed` as last drawn: more since means the server is sampling the stream (busy). */
let missedAtFlush = 0;
/** Aborts the event stream's fetch when the tab is hidden (it is read again once shown). */
let streamAbort = null;
/** The last /state and /metrics read, and when (the schedule's countdown runs on between reads). */
let slow = null;
let slowAt = 0;

// --- the admin API ---------------------------------------------------------------------

class Unauthorized extends Error {}

/** The header for the token: its UTF-8 bytes, one character each (the guard compares bytes). */
function authHeaders(candidate = token) {
  if (!candidate) return {};
  const bytes = new TextEncoder().encode(candidate);
  return { authorization: "Bearer " + String.fromCharCode(...bytes) };
}

async function api(method, path, body) {
  const headers = authHeaders();
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) throw new Unauthorized();
  const type = resp.headers.get("content-type") || "";
  const data = type.startsWith("application/json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${data.error || data}`);
  return data;
}

/** Run an action the user asked for; its error is shown, never thrown. */
async function act(what) {
  try {
    const result = await what();
    showError("");
    await poll(true);
    return result;
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin("The token was refused (401).");
    showError(err.message);
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

// --- login -------------------------------------------------------------------------------

function showLogin(message) {
  running = false;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setStatus("token needed", "login");
  $("token").focus();
}

async function login(event) {
  event.preventDefault();
  const candidate = $("token").value;
  let resp;
  try {
    resp = await fetch("/listeners", { headers: authHeaders(candidate), cache: "no-store" });
  } catch (err) {
    $("login-error").textContent = `The admin API cannot be reached: ${err.message}`;
    return;
  }
  if (resp.status === 401) {
    $("token").value = "";
    $("login-error").textContent = "Wrong token: the admin API refused it (401).";
    return;
  }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  $("token").value = "";
  start();
}

function logout() {
  showLogin("");
}

// --- start -------------------------------------------------------------------------------

async function boot() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("pause").addEventListener("click", () => act(() => api("POST", "/schedule/pause")));
  $("resume").addEventListener("click", () => act(() => api("POST", "/schedule/resume")));
  $("panic").addEventListener("click", () => act(() => api("POST", "/panic")));
  $("filter-listener").addEventListener("change", rerender);
  $("filter-type").addEventListener("change", rerender);
  $("event-list").addEventListener("scroll", onScroll, { passive: true });
  $("event-list").addEventListener("click", onRowClick);
  $("event-list").addEventListener("keydown", onRowKey);
  document.addEventListener("visibilitychange", onVisibility);
  $("follow").addEventListener("click", () => { $("event-list").scrollTop = 0; onScroll(); });
  for (const type of TYPES) addOption($("filter-type"), type);
  let resp;
  try {
    resp = await fetch("/listeners", { headers: authHeaders(), cache: "no-store" });
  } catch (err) {
    setStatus("unreachable", "error");
    showError(`The admin API cannot be reached: ${err.message}`);
    return;
  }
  if (resp.status === 401) return showLogin(token ? "The saved token was refused (401)." : "");
  start();
}

function start() {
  running = true;
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !token;
  pollLoop();
  follow();
}

async function pollLoop() {
  while (running) {
    await poll();
    await sleep(busy ? BUSY_POLL_MS : POLL_MS);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- listeners, state, metrics -------------------------------------------------------

async function poll(all = false) {
  if (!running) return;
  try {
    const readSlow = all || !slow || performance.now() - slowAt >= SLOW_POLL_MS - 100;
    // /metrics is read for the rules' counts only: not while no listener has a rule
    const withRules = !slow || slow.state.listeners.some((item) => item.rules.length);
    const [list, read] = await Promise.all([
      api("GET", "/listeners"),
      readSlow ? Promise.all([api("GET", "/state"), withRules ? api("GET", "/metrics") : ""]) : null,
    ]);
    if (read) {
      slow = { state: read[0], fired: firedByRule(read[1]) };
      slowAt = performance.now();
    }
    const { state, fired } = slow;
    const now = Date.now() / 1000;
    syncCards(list.listeners);
    const inForce = new Map(state.listeners.map((item) => [item.name, item]));
    for (const view of list.listeners) {
      updateCard(view, inForce.get(view.name), fired.get(view.name) || new Map(), now);
    }
    updateSchedule(state, (performance.now() - slowAt) / 1000);
    const source = state.profile.source || "profile";
    $("profile").textContent = `${source.split("/").pop()} · ${state.profile.sha256.slice(0, 12)}`;
    $("profile").title = `${source}, sha256 ${state.profile.sha256}`;
    if ($("status").dataset.state !== "live") setStatus("connected", "ok");
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin("The token was refused (401).");
    setStatus("unreachable", "error");
  }
}

/** listener -> rule -> times it acted, from GET /metrics: a rule that acted is counted as a
 * fault, as a delay, or both (a fault that waited), so the larger of the two. */
function firedByRule(text) {
  const counts = new Map();
  const line = /^faultserver_(faults|delayed)_total\{([^}]*)\} ([0-9.e+]+)$/;
  for (const row of text.split("\n")) {
    const m = line.exec(row);
    if (!m) continue;
    const labels = {};
    for (const [, key, value] of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const byRule = counts.get(labels.listener) || new Map();
    counts.set(labels.listener, byRule);
    const seen = byRule.get(labels.rule) || { faults: 0, delayed: 0 };
    seen[m[1]] += Number(m[3]);
    byRule.set(labels.rule, seen);
  }
  const out = new Map();
  for (const [name, byRule] of counts) {
    out.set(name, new Map([...byRule].map(([rule, c]) => [rule, Math.max(c.faults, c.delayed)])));
  }
  return out;
}

function syncCards(views) {
  const names = views.map((v) => v.name);
  if (names.join("\n") === [...listeners.keys()].join("\n")) return;
  const holder = $("listeners");
  for (const [name, item] of listeners) {
    if (!names.includes(name)) {
      item.card.remove();
      listeners.delete(name);
    }
  }
  for (const name of names) {
    if (listeners.has(name)) continue;
    const card = $("listener-template").content.firstElementChild.cloneNode(true);
    card.dataset.name = name;
    card.querySelector(".name").textContent = name;
    for (const button of card.querySelectorAll("[data-mode]")) {
      button.addEventListener("click", () =>
        act(() => api("PATCH", `/listeners/${encodeURIComponent(name)}`, { accept: button.dataset.mode })));
    }
    for (const button of card.querySelectorAll("[data-how]")) {
      button.addEventListener("click", () => act(async () => {
        const idleOnly = card.querySelector(".idle-only").checked;
        const done = await api("POST", `/listeners/${encodeURIComponent(name)}/drop`,
          { how: button.dataset.how, idle_only: idleOnly });
        card.querySelector(".drop-result").textContent = `${done.dropped} dropped (${done.how})`;
      }));
    }
    for (const figure of card.querySelectorAll(".plot")) figure.append(makePlot());
    listeners.set(name, { card, history: [] });
    holder.append(card);
    addOption($("filter-listener"), name);
  }
  // keep the profile's order
  for (const name of names) holder.append(listeners.get(name).card);
}

function updateCard(view, inForce, fired, now) {
  const item = listeners.get(view.name);
  const card = item.card;
  card.querySelector(".url").textContent = view.url;
  card.dataset.accept = view.accept;
  for (const button of card.querySelectorAll("[data-mode]")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === view.accept));
  }
  card.querySelector(".mode-cause").textContent = inForce ? `(${inForce.accept_cause})` : "";
  const faults = Object.values(view.faults).reduce((a, b) => a + b, 0);
  const history = item.history;
  history.push({ t: now, requests: view.requests, faults: { ...view.faults }, open: view.open_connections });
  while (history.length && history[0].t < now - WINDOW_S - 2) history.shift();
  const rates = ratesOf(history);
  const last = rates.at(-1) || { requests: 0, faults: {} };
  setText(card, ".open", view.open_connections);
  setText(card, ".peak", view.peak_connections);
  setText(card, ".rps", last.requests.toFixed(1));
  setText(card, ".fps", Object.values(last.faults).reduce((a, b) => a + b, 0).toFixed(1));
  setText(card, ".retries", view.retries);
  setText(card, ".faults", faults);
  updateRules(card, inForce ? inForce.rules : [], fired);
  if (document.hidden) return;  // the history goes on; the plots are drawn once shown
  const plot = (kind) => card.querySelector(`[data-plot="${kind}"]`);
  const span = Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, now - history[0].t));
  drawPlot(plot("requests"), now, span, { requests: rates.map((r) => [r.t, r.requests]) });
  const actions = [...new Set(rates.flatMap((r) => Object.keys(r.faults)))].sort();
  const series = {};
  for (const action of actions) series[action] = rates.map((r) => [r.t, r.faults[action] || 0]);
  drawPlot(plot("faults"), now, span, series);
  drawPlot(plot("open"), now, span, { open: history.map((h) => [h.t, h.open]) });
}

/** Per-second rates between successive samples; a counter that went down (a reset) counts from 0. */
function ratesOf(history) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1];
    const b = history[i];
    const dt = Math.max(b.t - a.t, 0.001);
    const delta = (x, y) => (y >= x ? y - x : y) / dt;
    const faults = {};
    for (const [action, n] of Object.entries(b.faults)) faults[action] = delta(a.faults[action] || 0, n);
    out.push({ t: b.t, requests: delta(a.requests, b.requests), faults });
  }
  return out;
}

function updateRules(card, rules, fired) {
  const body = card.querySelector(".rules tbody");
  card.querySelector(".rules").hidden = rules.length === 0;
  const rows = rules.map((rule) => [rule.name, describeAction(rule.action), String(fired.get(rule.name) || 0)]);
  const key = JSON.stringify(rows);
  if (body.dataset.key === key) return;
  body.dataset.key = key;
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
}

function describeAction(action) {
  const extra = Object.entries(action).filter(([k]) => k !== "name");
  return extra.length ? `${action.name} ${extra.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}` : action.name;
}

/** The schedule as read `age` seconds ago: the time to the next phase counts down meanwhile. */
function updateSchedule(state, age) {
  const paused = state.schedule.paused;
  const withSchedule = state.listeners.filter((item) => item.schedule);
  $("schedule").dataset.paused = String(paused);
  $("schedule-state").textContent = withSchedule.length === 0
    ? `no listener has a schedule${paused ? " (paused)" : ""}`
    : (paused ? "paused: phases do not change" : "running");
  $("phases").replaceChildren(...withSchedule.map((item) => {
    const s = item.schedule;
    const li = document.createElement("li");
    li.dataset.listener = item.name;
    if (s.ended || s.phase === null) {
      li.textContent = `${item.name}: schedule ended, accept ${item.accept}`;
    } else {
      const left = s.paused ? s.next_in_s : Math.max(0, s.next_in_s - age);
      const next = s.next_in_s === null ? "" : `; next in ${left.toFixed(1)} s`;
      li.textContent = `${item.name}: phase ${s.phase + 1} of ${s.phases} (cycle ${s.cycle}), ` +
        `accept ${item.accept}${next}${s.paused ? " (paused)" : ""}`;
    }
    return li;
  }));
}

function setText(root, selector, value) {
  const el = root.querySelector(selector);
  const text = String(value);
  if (el.textContent !== text) el.textContent = text;
}

function addOption(select, value) {
  if ([...select.options].some((o) => o.value === value)) return;
  const option = document.createElement("option");
  option.value = option.textContent = value;
  select.append(option);
}

// --- plots -------------------------------------------------------------------------------

const PLOT_W = 300;
const PLOT_H = 70;

function makePlot() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${PLOT_W} ${PLOT_H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("class", "axis");
  for (const [k, v] of Object.entries({ x1: 0, x2: PLOT_W, y1: PLOT_H - 1, y2: PLOT_H - 1 })) base.setAttribute(k, v);
  svg.append(base);
  const legend = document.createElement("ul");
  legend.className = "legend";
  const holder = document.createDocumentFragment();
  holder.append(svg, legend);
  return holder;
}

/** Redraw one plot: `series` is {label: [[t, value], ...]}, over the last `span` seconds. */
function drawPlot(figure, now, span, series) {
  const svg = figure.querySelector("svg");
  const labels = Object.keys(series);
  let top = 1;
  for (const points of Object.values(series)) for (const [, v] of points) top = Math.max(top, v);
  top = niceCeiling(top);
  const lines = [...svg.querySelectorAll("polyline")];
  labels.forEach((label, i) => {
    let line = lines[i];
    if (!line) {
      line = document.createElementNS(SVG, "polyline");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      svg.append(line);
    }
    line.setAttribute("class", `series s${i % 6}`);
    line.dataset.label = label;
    const points = series[label]
      .filter(([t]) => t >= now - span)
      .map(([t, v]) => `${(PLOT_W * (1 - (now - t) / span)).toFixed(1)},${(PLOT_H - 1 - (PLOT_H - 2) * v / top).toFixed(1)}`);
    line.setAttribute("points", points.join(" "));
  });
  for (const extra of lines.slice(labels.length)) extra.remove();
  const lastValues = labels.map((label) => (series[label].at(-1) || [0, 0])[1]);
  const total = lastValues.reduce((a, b) => a + b, 0);
  figure.dataset.last = String(total);
  figure.querySelector(".value").textContent = `now ${format(total)} · max ${format(top)} · ${Math.round(span)} s`;
  const legend = figure.querySelector(".legend");
  const legendKey = labels.join("\n");
  if (figure.dataset.plot === "faults" && legend.dataset.key !== legendKey) {
    legend.dataset.key = legendKey;
    legend.replaceChildren(...labels.map((label, i) => {
      const li = document.createElement("li");
      li.className = `s${i % 6}`;
      li.textContent = label;
      return li;
    }));
  }
}

function niceCeiling(v) {
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * step) return m * step;
  return 10 * step;
}

function format(v) {
  return v >= 100 ? grouped(Math.round(v)) : v.toFixed(v >= 10 ? 0 : 1);
}

// --- events ------------------------------------------------------------------------------

/** Follow GET /events/stream through fetch (EventSource cannot send the token), reconnecting
 * from the last id seen. */
async function follow() {
  try {
    const recent = await api("GET", `/events?newest=${MAX_ROWS / 5}`);
    receive(recent.events);
    lastId = recent.next;
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin("The token was refused (401).");
  }
  while (running) {
    if (document.hidden) {
      await shown();
      continue;
    }
    try {
      const since = lastId === null ? "" : `since=${lastId}&`;
      streamAbort = new AbortController();
      const query = `${since}rate=${STREAM_RATE}&burst=${STREAM_BURST}`;
      const resp = await fetch(`/events/stream?${query}`,
        { headers: authHeaders(), cache: "no-store", signal: streamAbort.signal });
      if (resp.status === 401) return showLogin("The token was refused (401).");
      if (!resp.ok) throw new Error(`GET /events/stream: ${resp.status}`);
      setStatus("live", "live");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      while (running) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const frames = buffer.split("\n\n");
        buffer = frames.pop();
        // an event's frame is kept as text and parsed only if it is still among the newest
        // MAX_ROWS when the rows are drawn: under load most leave the page unread
        const events = [];
        for (const frame of frames) {
          if (frame.startsWith("id: ")) events.push(frame);
          else readFrame(frame);
        }
        receive(events);
      }
      reader.cancel().catch(() => {});
    } catch (err) {
      // the server went away or stopped the stream (or the tab was hidden): try again
    }
    streamAbort = null;
    if (document.hidden) continue;  // read again from lastId once shown
    if (running) setStatus("reconnecting", "error");
    await sleep(RETRY_MS);
  }
}

/** Resolves once the tab is shown. */
function shown() {
  return new Promise((resolve) => {
    const check = () => {
      if (document.hidden) return;
      document.removeEventListener("visibilitychange", check);
      resolve();
    };
    document.addEventListener("visibilitychange", check);
  });
}

/** A hidden tab stops the stream (the server then skips nothing for it and sends nothing) and
 * draws nothing; once shown, the stream starts again from the last event seen (the newest
 * STREAM_BURST of those after it, the rest counted as dropped), and the rows are drawn. */
function onVisibility() {
  if (document.hidden) {
    streamAbort?.abort();
  } else {
    scheduleFlush();
  }
}

/** A notice (`missed`) or a keep-alive comment. */
function readFrame(frame) {
  let kind = "";
  let data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) kind = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;  // a comment (keep-alive)
  if (kind === "missed") missed += JSON.parse(data).missed;
}

/** An event's id: from its frame's first line (`id: N`) while it is still text. */
function idOf(item) {
  return typeof item === "string" ? Number(item.slice(4, item.indexOf("\n"))) : item.id;
}

/** An event from its frame (`id: N`, `data: JSON`; the JSON is one line), or as it came. */
function parseEvent(item) {
  return typeof item === "string" ? JSON.parse(item.slice(item.indexOf("\ndata: ") + 7)) : item;
}

/** New events, oldest first: parsed ones, or frames still as text (kept as text, at most
 * MAX_ROWS of them, until they are drawn). */
function receive(events) {
  if (!events.length) return;
  incoming.push(...events);
  if (incoming.length > MAX_ROWS) {
    dropped += incoming.length - MAX_ROWS;
    incoming = incoming.slice(-MAX_ROWS);
  }
  if (paused) pendingWhilePaused += events.length;
  lastId = Math.max(lastId ?? 0, idOf(events.at(-1)));
  scheduleFlush();
}

/** Draw in an animation frame, RENDER_MS (busy: BUSY_RENDER_MS) after the last drawing. */
function scheduleFlush() {
  if (renderTimer || document.hidden) return;
  const wait = Math.max(RENDER_MS, flushedAt + renderDelay - performance.now());
  renderTimer = setTimeout(() => requestAnimationFrame(flush), wait);
}

/** The events that arrived join the kept ones (parsed now; the oldest leave). */
function absorb() {
  const batch = incoming.map(parseEvent);
  incoming = [];
  for (const event of batch) if (event.type) addOption($("filter-type"), event.type);
  store.push(...batch);
  if (store.length > MAX_ROWS) {
    dropped += store.length - MAX_ROWS;
    store = store.slice(-MAX_ROWS);
  }
  return batch;
}

function flush() {
  renderTimer = 0;
  if (document.hidden) return;  // drawn once shown (onVisibility)
  flushedAt = performance.now();
  if (paused) {  // nothing is parsed or drawn while scrolled: only the count of new events
    renderDelay = BUSY_RENDER_MS;
    showCounts();
    return;
  }
  const batch = absorb();
  busy = batch.length > BUSY_BATCH || missed > missedAtFlush;
  renderDelay = busy ? BUSY_RENDER_MS : RENDER_MS;
  missedAtFlush = missed;
  const list = $("event-list");
  const fresh = [];  // newest first
  for (let i = batch.length - 1; i >= 0 && fresh.length < MAX_ROWS; i--) if (wanted(batch[i])) fresh.push(batch[i]);
  if (fresh.length >= MAX_ROWS) {
    // under load every row shown is new: the rows already there are refilled, not rebuilt
    const rows = list.children;
    fresh.forEach((event, i) => (i < rows.length ? fill(rows[i], event) : list.append(row(event))));
    while (rows.length > fresh.length) list.lastElementChild.remove();
  } else {
    const fragment = document.createDocumentFragment();
    for (const event of fresh) fragment.append(row(event));
    list.prepend(fragment);
  }
  trimRows(list);
  showCounts();
}

/** Rows of events no longer kept leave the page (there are never more than MAX_ROWS). */
function trimRows(list) {
  const oldest = store.length ? store[0].id : Infinity;
  while (list.lastElementChild && (Number(list.lastElementChild.dataset.id) < oldest || list.children.length > MAX_ROWS)) {
    list.lastElementChild.remove();
  }
}

function rerender() {
  absorb();
  const list = $("event-list");
  const rows = [];
  for (let i = store.length - 1; i >= 0; i--) if (wanted(store[i])) rows.push(row(store[i]));
  list.replaceChildren(...rows);
  pendingWhilePaused = 0;
  showCounts();
}

function onScroll() {
  const away = $("event-list").scrollTop > 4;
  if (away === paused) return;
  paused = away;
  if (!paused && pendingWhilePaused) rerender();
  showCounts();
}

function showCounts() {
  const state = paused
    ? `paused while you scroll (${grouped(pendingWhilePaused)} new)`
    : "following";
  $("events-state").textContent = state;
  $("follow").hidden = !paused;
  const gone = dropped + missed;
  const el = $("dropped");
  el.dataset.dropped = String(gone);
  el.textContent = `newest ${grouped(MAX_ROWS)} kept · ${grouped(gone)} dropped`;
  el.title = `${grouped(dropped)} left the page, ${grouped(missed)} skipped by the server`;
}

function wanted(event) {
  const listener = $("filter-listener").value;
  const type = $("filter-type").value;
  return (!listener || event.listener === listener) && (!type || event.type === type);
}

/** A new row for `event`: its summary line, and its fields once opened (`toggle`). Plain
 * elements, not <details>: each of those brings a shadow tree, and under load the page adds
 * up to a hundred rows a second; one listener on the list opens them all. */
function row(event) {
  const li = document.createElement("li");
  const summary = document.createElement("div");
  summary.className = "summary";
  summary.tabIndex = 0;
  summary.setAttribute("role", "button");
  for (const cls of ["time", "listener", "type", "what", "badge"]) {
    const span = document.createElement("span");
    span.className = cls;
    summary.append(span);
  }
  li.append(summary);
  fill(li, event);
  return li;
}

/** Open a row (its fields written out now) or close it. */
function toggle(li) {
  const pre = li.querySelector("pre");
  li.firstElementChild.setAttribute("aria-expanded", String(!pre));
  if (pre) return pre.remove();
  const fields = document.createElement("pre");
  fields.textContent = JSON.stringify(shownIn.get(li), null, 2);
  li.append(fields);
}

function onRowClick(event) {
  const summary = event.target.closest(".summary");
  if (summary) toggle(summary.parentElement);
}

function onRowKey(event) {
  const summary = event.target.closest(".summary");
  if (!summary || (event.key !== "Enter" && event.key !== " ")) return;
  event.preventDefault();
  toggle(summary.parentElement);
}

/** The event each row shows (a row may be refilled with another). */
const shownIn = new WeakMap();

/** Show `event` in the row `li` (new, or one that showed another event: then closed). */
function fill(li, event) {
  shownIn.set(li, event);
  li.dataset.id = event.id;
  li.dataset.type = event.type;
  li.className = `event type-${event.type}${event.retry ? " retry" : event.repeat ? " repeat" : ""}`;
  const summary = li.firstElementChild;
  if (summary.nextElementSibling) {
    summary.nextElementSibling.remove();
    summary.setAttribute("aria-expanded", "false");
  }
  const spans = summary.children;
  spans[0].textContent = clock(event.time);
  spans[1].textContent = event.listener || "-";
  spans[2].textContent = event.type;
  spans[3].textContent = summarize(event);
  spans[4].textContent = event.retry ? "retry" : event.repeat ? "repeat" : "";
}

function clock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function summarize(e) {
  switch (e.type) {
    case "request": return `${e.method} ${e.path}`;
    case "response": return `${e.status} ${e.method || ""} ${e.path || ""}`.trim();
    case "fault": return `${e.rule} → ${e.action}${e.path ? ` ${e.method} ${e.path}` : ""}`;
    case "accept": return `conn ${e.conn} from ${e.peer}`;
    case "peer_close": return `conn ${e.conn} ${e.how}`;
    case "mode": return `accept ${e.accept} (${e.cause})`;
    case "phase": return e.phase === null ? `schedule ended, accept ${e.accept}` : `phase ${e.phase + 1}, accept ${e.accept}`;
    case "drop": return `${e.connections} connections, ${e.how}${e.idle_only ? ", idle only" : ""}`;
    default: {
      const skip = new Set(["id", "time", "type", "listener"]);
      return Object.entries(e).filter(([k]) => !skip.has(k)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    }
  }
}

boot();
