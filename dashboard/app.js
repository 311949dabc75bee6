// The nexus-node dashboard: one hand-written ES2020 module, no build step, no
// dependency. It talks only to the node that served it:
//   /ws       payment events (JSON-RPC `subscribe`, resumed with `since_seq`)
//   /metrics  Prometheus text, polled every POLL_MS and charted
//   /health   status, a stalled observer, the tip, the RPC providers
//   /api/observer/dead-letters  the latest dead letters (admin: needs a key)
// A metric the node does not export shows as "no data", never as an error.
// Everything from the node is put on the page as text, never as HTML.

const POLL_MS = 3000;
const SAMPLES = 60; // points per chart
const FEED_ROWS = 100; // feed rows kept on the page
const BACKLOG = 50; // events replayed on the first connection
const KEY_ITEM = "nexus.apiKey";
const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...kids) {
  const e = ["svg", "polyline"].includes(tag)
    ? document.createElementNS(SVG_NS, tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, v);
  e.append(...kids.filter((k) => k != null).map((k) => (typeof k === "object" ? k : String(k))));
  return e;
}

// --- Prometheus text --------------------------------------------------------

/** One scrape of `/metrics`: the declared families and every sample. */
class Scrape {
  constructor(text) {
    this.families = new Set(); // names from `# TYPE` lines (a counter's without `_total`)
    this.samples = [];
    for (const line of text.split("\n")) {
      if (line.startsWith("# TYPE ")) this.families.add(line.split(" ")[2]);
      if (!line || line.startsWith("#")) continue;
      const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const [, k, v] of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[k] = v.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
      this.samples.push({ name: m[1], labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
    }
  }

  /** Is `name` exported? A family with no samples yet still declares its type. */
  has(name) {
    return this.families.has(name) || this.families.has(name.replace(/_(total|sum|count|bucket)$/, ""));
  }

  /** The sum of `name`'s samples whose labels match `where`; null when not exported. */
  sum(name, where = {}) {
    if (!this.has(name)) return null;
    return this.samples
      .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
      .reduce((a, s) => a + s.value, 0);
  }

  /** `name` summed by the value of `label` (a Map); null when not exported. */
  by(name, label) {
    if (!this.has(name)) return null;
    const out = new Map();
    for (const s of this.samples) {
      if (s.name === name) out.set(s.labels[label] ?? "", (out.get(s.labels[label] ?? "") ?? 0) + s.value);
    }
    return out;
  }
}

// --- Formatting ---------------------------------------------------------------

const int = (v) => Math.round(v).toLocaleString("en-US");
const pct = (v) => `${(v * 100).toFixed(1)} %`;
const secs = (v) => (v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(2)} s`);
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);
const short = (s) => (s && s.length > 16 ? `${s.slice(0, 8)}…${s.slice(-5)}` : s ?? "?");

/** An amount in its asset's base unit: STX (escrow payments name none) in STX, tokens as they are. */
function amount(value, asset) {
  if (value == null) return "";
  if (!asset || asset === "STX") return `${(Number(value) / 1e6).toLocaleString("en-US")} STX`;
  return `${Number(value).toLocaleString("en-US")} ${asset.split("::").pop().split(".").pop()}`;
}

// --- Charts: the last SAMPLES values of each figure, as SVG polylines -------------

const history = new Map();

function record(key, value) {
  const list = history.get(key) ?? [];
  list.push(Number.isFinite(value) ? value : null);
  if (list.length > SAMPLES) list.shift();
  history.set(key, list);
  return list;
}

/** Draw `lists` into `svg`, one polyline each, on one scale, newest on the right. */
function spark(svg, lists) {
  const vals = lists.flat().filter((v) => v != null);
  const lo = Math.min(...vals);
  const span = Math.max(...vals) - lo || 1;
  svg.replaceChildren(
    ...lists.map((list, i) => {
      const pts = list
        .map((v, x) => (v == null ? null : `${((SAMPLES - list.length + x) / (SAMPLES - 1)) * 100},${28 - ((v - lo) / span) * 26}`))
        .filter(Boolean);
      return el("polyline", { points: pts.join(" "), class: `s${i % 4}`, "vector-effect": "non-scaling-stroke" });
    }),
  );
}

const chart = () => el("svg", { class: "spark", viewBox: "0 0 100 30", preserveAspectRatio: "none" });

// --- Figures --------------------------------------------------------------------

// [key, label, format]; `figures` computes [value, note] for each.
const TILES = [
  ["confirmed", "Payments confirmed", int],
  ["failed", "Payments failed", int],
  ["dropped", "Payments dropped", int],
  ["success", "Success rate", pct],
  ["processing", "Processing time (avg)", secs],
  ["retries", "Retry rate", (v) => v.toFixed(2)],
  ["errors", "Payment errors", int],
  ["ws", "WebSocket connections", int],
  ["tip", "Tip height", int],
  ["lag", "Tip lag (blocks)", int],
  ["open", "Open payments", int],
  ["dead", "Dead letters", int],
];

/** Success rate per origin (relay, x402, observer, …), for the success tile's note. */
function rateByOrigin(m) {
  const by = new Map();
  for (const s of m.samples.filter((s) => s.name === "nexus_payment_outcomes_total")) {
    const [ok, all] = by.get(s.labels.origin) ?? [0, 0];
    by.set(s.labels.origin, [ok + (s.labels.outcome === "confirmed" ? s.value : 0), all + s.value]);
  }
  return [...by].filter(([, [, all]]) => all > 0).map(([o, [ok, all]]) => `${o} ${pct(ok / all)}`).join(" · ");
}

function figures(m, h) {
  const [c, f, d] = ["confirmed", "failed", "dropped"].map((o) => m.sum("nexus_payment_outcomes_total", { outcome: o }));
  const tip = h?.last_block_height ?? m.sum("nexus_last_block_height");
  // 0 until the reconciler has read the chain once (or without an RPC): unknown, not "at genesis".
  const chainTip = h?.reconciler?.last_cycle?.tip_height ?? (m.sum("nexus_reconcile_tip_height") || null);
  const age = h?.last_block_age_seconds;
  return {
    confirmed: [c, "first outcome of each payment"],
    failed: [f, "aborted on chain, or refused by every node"],
    dropped: [d, "left the mempool, or never mined"],
    success: [c == null ? null : ratio(c, c + f + d), rateByOrigin(m) || "confirmed / outcomes"],
    processing: [
      ratio(m.sum("nexus_payment_processing_seconds_sum"), m.sum("nexus_payment_processing_seconds_count")),
      "first sighting → confirmed",
    ],
    retries: [ratio(m.sum("nexus_payment_retries_total"), m.sum("nexus_payments_seen_total")), "broadcast retries per payment seen"],
    errors: [m.sum("nexus_payment_errors_total"), "by reason below"],
    ws: [m.sum("nexus_ws_connections"), "this page included"],
    tip: [tip, age == null ? "no block yet" : `last block ${int(age)} s ago`],
    lag: [tip != null && chainTip != null ? chainTip - tip : null, chainTip == null ? "chain tip not read (needs an RPC)" : `chain tip ${int(chainTip)}`],
    open: [m.sum("nexus_reconcile_open_payments"), "watched by the reconciler"],
    dead: [m.sum("nexus_dead_letters_total"), "observer payloads, since start"],
  };
}

function renderTiles(m, h) {
  const values = figures(m, h);
  for (const [key, label, fmt] of TILES) {
    let tile = document.querySelector(`[data-figure="${key}"]`);
    if (!tile) {
      tile = el("div", { class: "tile", "data-figure": key },
        el("div", { class: "label" }, label), el("div", { class: "value" }), chart(), el("div", { class: "note" }));
      $("tiles").append(tile);
    }
    const [value, note] = values[key];
    const ok = value != null && Number.isFinite(value);
    tile.querySelector(".value").replaceChildren(ok ? fmt(value) : el("span", { class: "nodata" }, "no data"));
    tile.querySelector(".note").textContent = note;
    spark(tile.querySelector("svg"), [record(key, ok ? value : null)]);
  }
}

function renderRevenue(m) {
  const by = m.by("nexus_revenue_recovered_total", "asset");
  const ul = $("revenue");
  if (!by || by.size === 0) {
    ul.replaceChildren(el("li", { class: "text muted" }, by ? "none recovered yet" : "no data"));
    return;
  }
  ul.replaceChildren(...[...by].map(([asset, v]) => {
    const svg = chart();
    spark(svg, [record(`revenue:${asset}`, v)]);
    return el("li", {}, el("span", { class: "mono", title: asset }, short(asset)), svg, amount(v, asset));
  }));
}

function renderErrors(m) {
  const groups = [["reason", m.by("nexus_payment_errors_total", "reason")], ["contract", m.by("nexus_contract_errors_total", "error")]];
  const rows = groups.flatMap(([kind, by]) => [...(by ?? [])].filter(([, v]) => v > 0).map(([k, v]) => [`${kind}: ${k}`, v]));
  const max = Math.max(1, ...rows.map(([, v]) => v));
  const ul = $("errors");
  if (rows.length === 0) {
    const none = groups.every(([, by]) => by == null);
    ul.replaceChildren(el("li", { class: "text muted" }, none ? "no data" : "no errors"));
    return;
  }
  ul.replaceChildren(...rows.sort((a, b) => b[1] - a[1]).map(([k, v]) => {
    const bar = el("div", { class: "bar" });
    bar.style.width = `${(v / max) * 100}%`; // CSSOM, not an inline style attribute: the CSP allows it
    return el("li", {}, el("span", { class: "mono" }, k), bar, int(v));
  }));
}

function renderHealth(h, m) {
  const badge = $("health");
  badge.dataset.state = h ? h.status : "down";
  badge.textContent = `health: ${h ? h.status : "unreachable"}`;
  const stores = h ? [h.state_store, h.history_store].filter((s) => s !== "ok") : [];
  badge.title = stores.join("; ");
  const info = [];
  if (h) info.push(h.mode, h.contract_id);
  const started = m?.sum("process_start_time_seconds");
  if (started) info.push(`up ${int((Date.now() / 1000 - started) / 60)} min`);
  const redis = m?.sum("nexus_redis_connected");
  if (h?.mode === "production" && redis != null) info.push(redis ? "Redis connected" : "Redis LOST");
  $("node-info").textContent = info.join(" · ");

  const stalled = h?.status === "stalled" && h.stalled;
  $("stalled").hidden = !stalled;
  if (stalled) {
    $("stalled").textContent = `Ingest stalled since ${stalled.since} (${stalled.failures} failures): ${stalled.error}. ` +
      "stacks-node resends the payload and makes no block until the cause is fixed (docs/operations.md, \"A stalled chain\").";
  }

  const providers = h?.reconciler?.providers ?? [];
  $("providers").replaceChildren(...(providers.length
    ? providers.map((p) => el("tr", {}, el("td", {}, p.url), el("td", { class: `breaker-${p.breaker}` }, p.breaker), el("td", {}, p.successes), el("td", {}, p.failures)))
    : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, h ? "no RPC provider configured (rpc_urls)" : "unknown"))]));
}

// --- Dead letters: the count is a metric; the list needs an admin key ---------------

async function renderDeadLetters(m) {
  const n = m.sum("nexus_dead_letters_total");
  $("dead-count").textContent = n == null ? "no data" : `${int(n)} since the node started (nexus_dead_letters_total)`;
  const key = sessionStorage.getItem(KEY_ITEM);
  const list = $("dead-list");
  if (!key) {
    list.replaceChildren(el("li", { class: "text muted" }, "Enter an API key below to list the latest ones (GET /api/observer/dead-letters is admin-only)."));
    return;
  }
  try {
    const r = await fetch("/api/observer/dead-letters?limit=5", { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body?.error?.message ?? `HTTP ${r.status}`);
    list.replaceChildren(...(body.dead_letters.length
      ? body.dead_letters.map((d) => el("li", {}, el("span", { class: "mono" }, d.at), el("span", {}, d.source), el("span", { class: "muted" }, d.reason)))
      : [el("li", { class: "text muted" }, "none")]));
  } catch (e) {
    list.replaceChildren(el("li", { class: "text muted" }, `cannot list them: ${e.message}`));
  }
}

// --- Polling ---------------------------------------------------------------------

async function get(path, parse) {
  try {
    const r = await fetch(path, { cache: "no-store" });
    return await parse(r); // /health answers 503 with a body when a store is down
  } catch {
    return null; // the node is down or restarting: the banner says so
  }
}

async function poll() {
  try {
    const [text, h] = await Promise.all([get("/metrics", (r) => (r.ok ? r.text() : null)), get("/health", (r) => r.json())]);
    const down = [text == null && "/metrics", h == null && "/health"].filter(Boolean);
    $("unreachable").hidden = down.length === 0;
    $("unreachable").textContent = `Cannot read ${down.join(" and ")} from the node: the figures are from the last answer.`;
    const m = text == null ? null : new Scrape(text);
    renderHealth(h, m);
    if (m) {
      renderTiles(m, h);
      renderRevenue(m);
      renderErrors(m);
      await renderDeadLetters(m);
    }
    if (m || h) $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// --- The live feed over /ws --------------------------------------------------------

let cursor = null; // the highest seq handled: a reconnect resumes after it
let attempt = 0; // failed connections in a row (the backoff's exponent)

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn").textContent = `feed: ${text}`;
}

const subscribe = (id, since) =>
  JSON.stringify({ jsonrpc: "2.0", id, method: "subscribe", params: since == null ? { event: "all" } : { event: "all", since_seq: since } });

function where(e) {
  if (e.block_height != null) return `block ${e.block_height}`;
  return e.txid ? "mempool" : "";
}

function addEvent(e) {
  cursor = Math.max(cursor ?? 0, e.seq);
  const feed = $("feed");
  const rows = [...feed.rows];
  if (rows.some((r) => Number(r.dataset.seq) === e.seq)) return; // replayed at a seam
  if (rows.length >= FEED_ROWS && e.seq < Number(rows[rows.length - 1].dataset.seq)) return;
  const kind = e.type.replace("payment:", "");
  const row = el("tr", { "data-seq": e.seq, "data-type": e.type },
    el("td", {}, e.seq),
    el("td", { title: e.at }, new Date(e.at).toLocaleTimeString()),
    el("td", { class: `type-${kind}` }, kind),
    el("td", { title: e.payment_id }, short(e.payment_id)),
    el("td", { title: e.reason ?? "" }, e.reason ? `${e.status} (${e.reason})` : e.status),
    el("td", { title: `${e.sender ?? "?"} → ${e.recipient ?? "?"}` }, `${short(e.sender)} → ${short(e.recipient)}`),
    el("td", {}, amount(e.amount, e.asset), e.scheme ? ` (${e.scheme})` : ""),
    el("td", { title: e.txid ?? "" }, where(e)));
  feed.insertBefore(row, rows.find((r) => Number(r.dataset.seq) < e.seq) ?? null);
  while (feed.rows.length > FEED_ROWS) feed.lastElementChild.remove();
  $("feed-info").textContent = `last seq ${cursor}; newest first, at most ${FEED_ROWS} rows`;
}

function connect() {
  setConn(attempt ? "reconnecting" : "connecting", attempt ? `reconnecting (attempt ${attempt + 1})` : "connecting");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => ws.send(subscribe(1, cursor));
  ws.onmessage = (msg) => {
    const m = JSON.parse(msg.data);
    if (m.id === 1 && m.result) {
      attempt = 0;
      setConn("live", cursor == null ? "live" : `live (resumed after seq ${cursor})`);
      if (cursor == null) {
        // First connection: show the last BACKLOG events too (re-subscribing moves the cursor back).
        cursor = Math.max(0, m.result.head_seq - BACKLOG);
        ws.send(subscribe(2, cursor));
      }
    } else if (m.error) {
      console.warn("subscription refused", m.error);
    } else if (m.method && m.params) {
      addEvent(m.params);
    }
  };
  ws.onclose = (e) => {
    attempt += 1;
    // Doubling backoff from 0.5 s up to 15 s, with jitter so many tabs do not reconnect at once.
    const delay = Math.min(15000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    setConn("reconnecting", `closed (${e.code}); reconnecting in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  };
}

// --- API key -----------------------------------------------------------------------

$("key").value = sessionStorage.getItem(KEY_ITEM) ?? "";
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("key").value.trim();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
});
$("key-forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_ITEM);
  $("key").value = "";
});

connect();
poll();
