// memflask's dashboard: polls /stats, draws requests per second by verb, lists keys.
// Read-only: it calls /stats, /keys and /dashboard/about, never a verb that reads a value
// or writes. With a token set, the token lives in sessionStorage (this tab only) and goes
// in the Authorization header, never in a URL.
"use strict";

const POLL_MS = 2000;
const WINDOW_SECONDS = 300; // the chart's span
const KEYS_PER_PAGE = 100;
const TOKEN_KEY = "memflask.token";
const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
  "#db2777", "#65a30d", "#475569", "#ea580c"];
const SVG = "http://www.w3.org/2000/svg";

class NeedsToken extends Error {}

const byId = (id) => document.getElementById(id);
let previous = null; // the last /stats sample: {at, uptime, commands}
let series = []; // [{at, rates: {verb: per second}}], oldest first
const colours = new Map(); // verb -> colour, stable while the page is open
let keyCursor = "";

async function api(path) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  if (response.status === 401) throw new NeedsToken();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function askForToken() {
  const form = byId("token-form");
  const refused = sessionStorage.getItem(TOKEN_KEY) !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  byId("token-message").textContent = refused ? "That token was refused." : "";
  form.hidden = false;
  byId("figures").hidden = true;
  setStatus("needs the token", "down");
}

function setStatus(text, kind) {
  const status = byId("status");
  status.textContent = text;
  status.className = "status " + kind;
}

function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

function plural(n, one, many) {
  return formatCount(n) + " " + (n === 1 ? one : many || one + "s");
}

function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
}

function formatDuration(seconds) {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d) return d + " d " + h + " h";
  if (h) return h + " h " + m + " min";
  if (m) return m + " min " + (seconds % 60) + " s";
  return seconds + " s";
}

function showCap(valueId, capId, meterId, value, cap, format) {
  byId(valueId).textContent = format(value);
  byId(capId).textContent = cap ? "of " + format(cap) : "no cap";
  byId(meterId).value = cap ? Math.min(value / cap, 1) : 0;
}

function showStats(stats) {
  showCap("key-count", "key-cap", "key-meter", stats.keyCount, stats.maxSize, formatCount);
  showCap("bytes", "byte-cap", "byte-meter", stats.bytes, stats.maxBytes, formatBytes);
  const reads = stats.hits + stats.misses;
  byId("hit-ratio").textContent = reads ? (100 * stats.hits / reads).toFixed(1) + " %" : "–";
  byId("hits-misses").textContent =
    plural(stats.hits, "hit") + ", " + plural(stats.misses, "miss", "misses");
  byId("evictions").textContent = formatCount(stats.evictions);
  byId("expired").textContent = formatCount(stats.expired);
  byId("leases").textContent = formatCount(stats.leases);
  byId("lease-use").textContent =
    formatCount(stats.leaseFills) + " filled, " + formatCount(stats.staleAnswers) + " stale answers";
  byId("uptime").textContent = formatDuration(stats.uptime);
  byId("version").textContent = "version " + stats.version;
}

// Per-verb rates from two /stats samples; a restarted server (uptime went back) starts over.
function addSample(stats) {
  const now = { at: performance.now() / 1000, uptime: stats.uptime, commands: stats.commands };
  if (previous && now.uptime >= previous.uptime) {
    const seconds = Math.max(now.at - previous.at, 0.001);
    const rates = {};
    let total = 0;
    for (const [verb, count] of Object.entries(now.commands)) {
      const rate = Math.max(count - (previous.commands[verb] || 0), 0) / seconds;
      rates[verb] = rate;
      total += rate;
    }
    series.push({ at: now.at, rates });
    series = series.filter((point) => point.at >= now.at - WINDOW_SECONDS);
    byId("rate-total").textContent = total.toFixed(total < 10 ? 1 : 0);
  } else {
    series = [];
  }
  previous = now;
  drawChart(now.at);
}

function colourOf(verb) {
  if (!colours.has(verb)) colours.set(verb, COLOURS[colours.size % COLOURS.length]);
  return colours.get(verb);
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function niceCeiling(value) {
  if (value <= 1) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function drawChart(now) {
  const chart = byId("chart");
  chart.replaceChildren();
  // Drawn at the chart's size on screen, so that nothing is stretched.
  const width = chart.clientWidth || 600;
  const height = chart.clientHeight || 200;
  chart.setAttribute("viewBox", "0 0 " + width + " " + height);
  const verbs = [...new Set(series.flatMap((point) => Object.keys(point.rates)))]
    .filter((verb) => series.some((point) => point.rates[verb] > 0)).sort();
  let top = 0;
  for (const point of series) for (const verb of verbs) top = Math.max(top, point.rates[verb] || 0);
  top = niceCeiling(top);
  // The span grows with the samples up to WINDOW_SECONDS, so a fresh page fills the width.
  const span = Math.min(Math.max(series.length ? now - series[0].at : 0, 20), WINDOW_SECONDS);
  byId("chart-start").textContent = formatDuration(Math.round(span)) + " ago";
  const x = (at) => width * (1 - (now - at) / span);
  const y = (rate) => 3 + (height - 6) * (1 - rate / top); // 3 px inside the frame
  for (const fraction of [0, 0.5, 1]) {
    const level = height * fraction;
    chart.append(svgElement("line", { class: "grid", x1: 0, x2: width, y1: level, y2: level }));
  }
  byId("chart-top").textContent = top + "/s";
  const legend = byId("legend");
  legend.replaceChildren();
  for (const verb of verbs) {
    const points = series.map((point) => x(point.at).toFixed(1) + "," + y(point.rates[verb] || 0).toFixed(1));
    chart.append(svgElement("polyline", {
      points: points.join(" "), stroke: colourOf(verb), "data-verb": verb,
    }));
    // The latest point as a dot: a line needs two samples, the first shows at once.
    const [lastX, lastY] = points[points.length - 1].split(",");
    chart.append(svgElement("circle", { cx: lastX, cy: lastY, r: 3, fill: colourOf(verb) }));
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(verb);
    const latest = series.length ? series[series.length - 1].rates[verb] || 0 : 0;
    item.append(swatch, verb + " " + latest.toFixed(1) + "/s");
    item.dataset.verb = verb;
    legend.append(item);
  }
}

async function poll() {
  try {
    const stats = await api("/stats");
    byId("token-form").hidden = true;
    byId("figures").hidden = false;
    showStats(stats);
    addSample(stats);
    setStatus("live, updated " + new Date().toLocaleTimeString(), "live");
  } catch (error) {
    if (error instanceof NeedsToken) {
      askForToken();
      return; // polling resumes when a token is given
    }
    setStatus("cannot reach the server: " + error.message, "down");
  }
  setTimeout(poll, POLL_MS);
}

async function showAbout() {
  try {
    const about = await api("/dashboard/about");
    byId("store").textContent = about.store + " store";
    byId("version").textContent = "version " + about.version;
  } catch (error) {
    if (!(error instanceof NeedsToken)) byId("store").textContent = "store ?";
  }
}

async function listKeys(fromStart) {
  const list = byId("key-list");
  const note = byId("key-note");
  if (fromStart) {
    keyCursor = "";
    list.replaceChildren();
  }
  const query = new URLSearchParams({ prefix: byId("prefix").value, limit: KEYS_PER_PAGE });
  if (keyCursor) query.set("cursor", keyCursor);
  try {
    const page = await api("/keys?" + query);
    for (const key of page.keys) {
      const item = document.createElement("li");
      item.textContent = key; // text, never markup: a key may hold anything
      list.append(item);
    }
    keyCursor = page.cursor;
    byId("more-keys").hidden = !keyCursor;
    note.textContent = list.children.length + " key(s) listed" + (keyCursor ? ", more to come." : ", complete.");
  } catch (error) {
    if (error instanceof NeedsToken) return askForToken();
    note.textContent = error.status === 404 ? "This server has no /keys listing." : "Listing failed: " + error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    byId("token").value = "";
    byId("token-form").hidden = true;
    showAbout();
    poll();
  });
  byId("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    listKeys(true);
  });
  byId("more-keys").addEventListener("click", () => listKeys(false));
  showAbout();
  poll();
});
