// The control panel: plain JavaScript and canvas, served by the controller itself (no CDN).
"use strict";

const $ = (id) => document.getElementById(id);
let currentRun = null;

// -- API token: kept in sessionStorage (this tab, until it closes), never in a URL or a cookie,
// sent as a bearer header, which a page of another site cannot make the browser add
const TOKEN_KEY = "ims-testbed-api-token";

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
}

function showAuth() {
  const has = Boolean(storedToken());
  $("auth-state").textContent = has ? "API token set" : "no API token";
  $("login-button").hidden = has;
  $("forget-token").hidden = !has;
}

function askForToken(message) {
  $("login-message").textContent = message || "";
  $("login").hidden = false;
  $("token-input").value = "";
  $("token-input").focus();
}

function forgetToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing stored */ }
  showAuth();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  // the server's rule (libs/api-token): at least 16 visible ASCII characters
  if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token)) {
    $("login-message").textContent = "an API token is at least 16 visible ASCII characters, no spaces";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-input").value = "";
  $("login-message").textContent = "";
  $("login").hidden = true;
  showAuth();
});
$("login-cancel").addEventListener("click", () => { $("login").hidden = true; });
$("login-button").addEventListener("click", () => askForToken(""));
$("forget-token").addEventListener("click", () => { forgetToken(); askForToken("token forgotten"); });

async function api(method, path, body, raw) {
  const init = { method, headers: {} };
  const token = storedToken();
  if (token) init.headers["Authorization"] = `Bearer ${token}`;
  if (raw) { init.body = raw; }
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["content-type"] = "application/json"; }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
  if (response.status === 401 || response.status === 403) {
    // missing or refused: drop what is stored (it does not work) and ask again
    forgetToken();
    askForToken(response.status === 401
      ? "This needs the API token (401): enter it, then try again."
      : "The API token was refused (403 wrong API token): enter it again, then try again.");
  }
  if (!response.ok) {
    const detail = data && data.detail;
    const err = new Error(typeof detail === "string" ? detail : (response.statusText || `HTTP ${response.status}`));
    err.data = data;
    throw err;
  }
  return data;
}

// -- charts ------------------------------------------------------------------------------

// series: arrays of numbers (null: no value); options (all optional): xs, the x of each point
// (default: its index); refs, horizontal lines [{value, label, colour}] (P0, a CPU limit);
// marks, vertical lines at x values [{x, label}] (scaling events); log, a log10 y axis;
// widths and dashes per series, so lines that lie on each other stay apart
function drawSeries(canvas, series, colours, labels, options) {
  const opts = options || {};
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 32;
  ctx.clearRect(0, 0, w, h);
  const refs = opts.refs || [], marks = opts.marks || [];
  let max = 0, min = Infinity, n = 0;
  for (const s of series) {
    for (const v of s) { if (v != null && v > max) max = v; if (v != null && v > 0 && v < min) min = v; }
    n = Math.max(n, s.length);
  }
  for (const r of refs) { if (r.value != null && r.value > max) max = r.value; }
  max = max > 0 ? max * 1.1 : 1;
  // a log axis spans whole decades, from the smallest value shown
  const lo = opts.log ? Math.pow(10, Math.floor(Math.log10(Math.min(min === Infinity ? 1 : min, max / 10)))) : 0;
  const hi = opts.log ? Math.pow(10, Math.ceil(Math.log10(max))) : max;
  const yOf = (v) => {
    const f = opts.log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : v / hi;
    return h - pad + 4 - f * (h - pad - 8);
  };
  const xs = opts.xs;
  const x0 = xs && xs.length ? xs[0] : 0, x1 = xs && xs.length ? xs[xs.length - 1] : n - 1;
  const xOf = (x) => pad + (x1 > x0 ? ((x - x0) / (x1 - x0)) * (w - pad - 8) : 0);
  ctx.strokeStyle = "#cbd5e0"; ctx.fillStyle = "#4a5568"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(pad, 4); ctx.lineTo(pad, h - pad + 4); ctx.lineTo(w - 4, h - pad + 4); ctx.stroke();
  const tick = (v) => (v >= 10 || v === 0 ? v.toFixed(0) : v < 0.1 ? v.toPrecision(1) : v.toFixed(1));
  ctx.fillText(tick(hi), 2, 12); ctx.fillText(opts.log ? tick(lo) : "0", 2, h - pad + 4);
  if (opts.log) {  // a faint line at every decade between
    for (let d = lo * 10; d < hi; d *= 10) {
      const y = yOf(d);
      ctx.strokeStyle = "#edf2f7"; ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
      ctx.fillStyle = "#4a5568"; ctx.fillText(tick(d), 2, y + 4);
    }
  }
  if (xs && xs.length) {
    ctx.fillText(`${x0.toFixed(0)} s`, pad, h - pad + 16);
    const end = `${x1.toFixed(0)} s`;
    ctx.fillText(end, w - 8 - ctx.measureText(end).width, h - pad + 16);
  }
  for (const m of marks) {
    const x = xOf(m.x);
    ctx.strokeStyle = "#a0aec0"; ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(x, 4); ctx.lineTo(x, h - pad + 4); ctx.stroke(); ctx.setLineDash([]);
    if (m.label) { ctx.fillStyle = "#4a5568"; ctx.fillText(m.label, x + 2, 14); }
  }
  for (const r of refs) {
    if (r.value == null) continue;
    const y = yOf(r.value);
    ctx.strokeStyle = r.colour || "#c53030"; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke(); ctx.setLineDash([]); ctx.lineWidth = 1;
    ctx.fillStyle = r.colour || "#c53030"; ctx.fillText(r.label, w - 8 - ctx.measureText(r.label).width, y - 3);
  }
  let labelX = pad + 8;
  series.forEach((s, k) => {
    ctx.strokeStyle = colours[k]; ctx.lineWidth = (opts.widths && opts.widths[k]) || 1.5; ctx.beginPath();
    ctx.setLineDash((opts.dashes && opts.dashes[k]) || []);
    let started = false;
    s.forEach((v, i) => {
      if (v == null) { started = false; return; }  // a gap: the proxy was not there
      const x = xs ? xOf(xs[i]) : pad + (n > 1 ? (i / (n - 1)) * (w - pad - 8) : 0);
      const y = yOf(v);
      if (!started) { ctx.moveTo(x, y); started = true; } else { ctx.lineTo(x, y); }
    });
    ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = colours[k]; ctx.fillText(labels[k], labelX, xs ? h - 2 : h - 8);
    labelX += Math.max(120, ctx.measureText(labels[k]).width + 16);
  });
  ctx.lineWidth = 1;
}

function drawRate(points) {
  const canvas = $("rate-plot");
  drawSeries(canvas, [points.map((p) => p[1])], ["#2b6cb0"], ["invites/s (lambda(t))"]);
}

// -- pods --------------------------------------------------------------------------------

function renderPods(pods, proxyCounts) {
  const body = $("pods").querySelector("tbody");
  body.innerHTML = "";
  let phones = 0, registered = 0;
  for (const p of pods) {
    phones += p.phones; registered += p.registered;
    const proxy = proxyCounts ? (proxyCounts[p.pod] ?? "") : "";
    const tr = document.createElement("tr");
    tr.dataset.pod = p.pod;
    tr.innerHTML = `<td>${p.pod}</td><td>${p.phones}</td><td>${p.connected ? "connected" : "gone"}</td>` +
      `<td>${p.registered}</td><td>${proxy}</td><td>${p.calls_succeeded}</td><td>${p.calls_failed}</td>` +
      `<td>${p.calls_active}</td>`;
    body.appendChild(tr);
  }
  $("register-progress").textContent = phones ? `${registered} of ${phones} phones registered` : "";
}

let proxyCounts = null;
async function refreshClients() {
  try {
    const data = await api("GET", "/clients");
    proxyCounts = {};
    for (const p of data.pods) { proxyCounts[p.pod] = p.registered_at_proxy; }
  } catch (e) { /* the feed keeps the table alive */ }
}

// -- scenarios -----------------------------------------------------------------------------

async function loadScenarios(select) {
  const list = await api("GET", "/scenarios");
  const sel = $("scenario-select");
  const keep = select || sel.value;
  sel.innerHTML = "";
  for (const s of list) {
    const o = document.createElement("option"); o.value = s.name; o.textContent = `${s.name} (${s.rows} invites)`;
    sel.appendChild(o);
  }
  if (keep && list.some((s) => s.name === keep)) sel.value = keep;
  await showScenario();
}

async function showScenario() {
  const name = $("scenario-select").value;
  if (!name) { $("scenario-summary").textContent = "no scenario stored yet"; drawRate([]); return; }
  const s = await api("GET", `/scenarios/${encodeURIComponent(name)}`);
  $("scenario-summary").textContent =
    `${s.rows} invites over ${s.duration_s.toFixed(0)} s, peak ${s.peak_rate} invites/s, ` +
    `mean ${s.mean_rate.toFixed(2)}/s, pods needed ${s.pods_needed} (${s.phones_per_pod} phones each)`;
  drawRate(s.rate);
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("upload-file").files[0];
  const out = $("upload-result");
  if (!file) { out.innerHTML = '<p class="error">choose a CSV file first</p>'; return; }
  const form = new FormData(); form.append("file", file);
  const name = $("upload-name").value.trim();
  const query = name ? `?name=${encodeURIComponent(name)}` : "";
  out.textContent = "validating...";
  try {
    const stored = await api("POST", `/scenarios${query}`, undefined, form);
    // "stored" shows once the list and the summary show the new scenario, not before them
    let stale = "";
    try { await loadScenarios(stored.name); }
    catch (e) { stale = ` (the list did not refresh: ${escape(e.message)})`; }
    out.innerHTML = `<p class="ok">stored ${escape(stored.name)}: ${stored.rows} invites${stale}</p>`;
  } catch (e) {
    const defects = (e.data && e.data.defects) || [];
    const lines = defects.map((d) => `line ${d.line}: ${d.field}: ${d.message}`);
    out.innerHTML = `<p class="error">${escape(e.message)}</p><div class="defects">${lines.map(escape).join("<br>")}</div>`;
  }
});

function escape(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

$("scenario-select").addEventListener("change", showScenario);
$("delete-scenario").addEventListener("click", async () => {
  const name = $("scenario-select").value;
  if (!name) return;
  try { await api("DELETE", `/scenarios/${encodeURIComponent(name)}`); await loadScenarios(); }
  catch (e) { $("upload-result").innerHTML = `<p class="error">${escape(e.message)}</p>`; }
});

// -- run controls ------------------------------------------------------------------------

async function command(path, body) {
  $("run-error").textContent = "";
  try { const run = await api("POST", path, body); showRun(run); }
  catch (e) { $("run-error").textContent = e.message; }
}

$("register").addEventListener("click", () => command("/register"));
$("start").addEventListener("click", () => command("/runs", {
  scenario: $("scenario-select").value, speed: parseFloat($("speed").value), hold_ms: parseInt($("hold").value, 10) }));
$("pause").addEventListener("click", () => currentRun && command(`/runs/${currentRun}/pause`));
$("resume").addEventListener("click", () => currentRun && command(`/runs/${currentRun}/resume`));
$("stop").addEventListener("click", () => currentRun && command(`/runs/${currentRun}/stop`));

function showRun(run) {
  if (!run || !run.id) return;
  currentRun = run.id;
  $("run-state").textContent = `${run.state} (${run.scenario})`;
  $("elapsed").textContent = `${run.elapsed_s.toFixed(1)} / ${run.duration_s.toFixed(1)} s`;
  $("scheduled").textContent = run.scheduled;
  $("sent").textContent = run.sent;
  $("undeliverable").textContent = run.undeliverable;
  const last = run.last_second;
  $("lag").textContent = last && last.lag_p50_ms != null ? `${last.lag_p50_ms.toFixed(2)} / ${last.lag_p99_ms.toFixed(2)} ms` : "-";
  const link = $("log-link"); link.hidden = false; link.href = `/runs/${encodeURIComponent(run.id)}/log`;
  if (run.error) $("run-error").textContent = run.error;
}

// -- the experiment tab ------------------------------------------------------------------
// what `testbed run` pushes once a second, or the results folder `testbed view` loaded

const PALETTE = ["#2b6cb0", "#38a169", "#d69e2e", "#805ad5", "#dd6b20", "#319795", "#b83280", "#4a5568", "#c53030", "#2c7a7b"];
const exp = { epoch: null, seq: 0, data: null, samples: [], capacity: 3600, loading: false, shown: false };

function showTab(name) {
  if (name === "experiment") $("login").hidden = true;  // watching needs no token
  for (const page of document.querySelectorAll(".tab-page")) page.hidden = page.id !== `tab-${name}`;
  for (const button of document.querySelectorAll(".tabs .tab")) button.classList.toggle("active", button.dataset.tab === name);
  if (name === "experiment") renderExperiment();
}
for (const button of document.querySelectorAll(".tabs .tab")) {
  button.addEventListener("click", () => {
    exp.shown = true; location.hash = button.dataset.tab; showTab(button.dataset.tab);
    if (button.dataset.tab === "control" && !storedToken()) askForToken("");
  });
}

async function loadExperiment() {
  if (exp.loading) return;
  exp.loading = true;
  try { applyExperiment(await api("GET", "/experiment"), true); }
  catch (e) { /* the feed tries again with its next message */ }
  finally { exp.loading = false; }
}

// a message of the feed (or GET /experiment's answer, `full`): samples numbered after the last
// one held are appended; a gap (missed messages) or a new experiment reads it all again
function applyExperiment(msg, full) {
  if (full || msg.epoch !== exp.epoch) {
    if (!full && msg.held > msg.samples.length) { loadExperiment(); return; }
    exp.epoch = msg.epoch; exp.seq = 0; exp.samples = [];
  }
  const fresh = msg.samples.filter((s) => s.seq > exp.seq);
  if (fresh.length && exp.seq && fresh[0].seq !== exp.seq + 1) { loadExperiment(); return; }
  exp.samples.push(...fresh);
  exp.capacity = msg.capacity || exp.capacity;
  if (exp.samples.length > exp.capacity) exp.samples.splice(0, exp.samples.length - exp.capacity);
  if (fresh.length) exp.seq = fresh[fresh.length - 1].seq;
  exp.data = msg;
  if (msg.read_only) enterViewMode();
  // a panel opened during a run shows it, unless its user picked a tab
  if (!exp.shown && msg.experiment && !location.hash) { exp.shown = true; showTab("experiment"); }
  if (!$("tab-experiment").hidden) renderExperiment();
}

// `testbed view`: nothing here changes anything, so no token and no control tab
function enterViewMode() {
  if (document.body.classList.contains("view-mode")) return;
  document.body.classList.add("view-mode");
  $("tab-button-control").hidden = true;
  $("login").hidden = true;
  $("login-button").hidden = true;
  $("auth-state").textContent = "read-only: a results folder";
  exp.shown = true;
  showTab("experiment");
}

const fmt = (v, digits) => (v == null ? "-" : v.toFixed(digits));

function renderExperiment() {
  const data = exp.data;
  const info = data && data.experiment;
  $("exp-none").hidden = Boolean(info);
  if (!info) return;
  const samples = exp.samples;
  const last = samples.length ? samples[samples.length - 1] : {};
  $("exp-name").textContent = info.name;
  $("exp-source").textContent = info.source === "folder" ? `results folder ${info.folder || ""}` : `live run ${info.run_id}`;
  $("exp-status").textContent = info.status;
  $("exp-time").textContent = `${fmt(last.t_s, 0)}${info.duration_s != null ? ` / ${info.duration_s.toFixed(0)}` : ""} s`;
  $("exp-p0").textContent = `p${info.percentile} < ${info.p0_ms} ms`;
  $("exp-cpu").textContent = info.cpu_millicores ? `${info.cpu_millicores}m per proxy` : "none";
  $("exp-proxies").textContent = last.proxies != null
    ? `${last.proxies}${last.desired_proxies != null ? ` (desired ${last.desired_proxies})` : ""}` : "-";
  $("exp-arrivals").textContent = `${fmt(last.lb_invites_per_s, 1)}/s`;
  $("exp-calls").textContent = info.calls_attempted != null
    ? `${info.calls_succeeded} / ${info.calls_failed} of ${info.calls_attempted}`
    : `${fmt(last.calls_succeeded_per_s, 1)} / ${fmt(last.calls_failed_per_s, 1)} per s`;
  $("exp-reason").textContent = info.end_reason || "";

  // proxies: the state the runner reports (a results folder records none: when each had data)
  const names = [];
  for (const p of data.proxies) names.push(p.name);
  for (const s of samples) for (const name in s.per_proxy || {}) if (!names.includes(name)) names.push(name);
  names.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const byName = Object.fromEntries(data.proxies.map((p) => [p.name, p]));
  const body = $("exp-proxies-table").querySelector("tbody");
  body.innerHTML = "";
  for (const name of names) {
    const p = byName[name] || { name };
    const now = (last.per_proxy || {})[name] || {};
    const tr = document.createElement("tr");
    tr.dataset.proxy = name;
    const state = p.state ? `<span class="state ${p.state}">${p.state}</span>` : '<span class="muted">not recorded</span>';
    const seen = p.first_t_s != null ? `${p.first_t_s.toFixed(0)}-${fmt(p.last_t_s, 0)}` : "";
    tr.innerHTML = `<td>${escape(name)}</td><td>${state}</td><td>${seen}</td><td>${fmt(now.p99_ms, 1)}</td>` +
      `<td>${fmt(now.cpu_mcpu, 1)}</td><td>${fmt(now.invites_per_s, 1)}</td>`;
    body.appendChild(tr);
  }

  const xs = samples.map((s) => s.t_s);
  const col = (key) => samples.map((s) => (s[key] == null ? null : s[key]));
  const per = (name, key) => samples.map((s) => { const p = (s.per_proxy || {})[name]; return p && p[key] != null ? p[key] : null; });
  const colours = names.map((_n, i) => PALETTE[i % PALETTE.length]);
  const marks = data.events.map((e) => ({ x: e.t_s, label: `${e.before}->${e.after}` }));
  drawSeries($("exp-pool"), [col("replicas"), col("proxies"), col("ready_proxies"), col("desired_proxies")],
    ["#a0aec0", "#2b6cb0", "#38a169", "#dd6b20"], ["replicas", "serving", "ready", "desired"],
    { xs, marks, widths: [6, 3, 1.5, 1.5], dashes: [null, null, null, [5, 4]] });
  $("exp-p99-title").textContent = `p${info.percentile} response time per proxy (ms, log scale) against P0`;
  // over all proxies first, wide and light: the proxies' own lines stay visible on it
  drawSeries($("exp-p99"), [col("p99_ms"), ...names.map((n) => per(n, "p99_ms"))], ["#a0aec0", ...colours],
    ["all proxies", ...names], { xs, marks, log: true, widths: [4], refs: [{ value: info.p0_ms, label: `P0 ${info.p0_ms} ms` }] });
  drawSeries($("exp-cpu-chart"), names.map((n) => per(n, "cpu_mcpu")), colours, names,
    { xs, marks, refs: info.cpu_millicores ? [{ value: info.cpu_millicores, label: `limit ${info.cpu_millicores}m` }] : [] });
  // what the scenario controller sent under what reached the LB (they mostly coincide)
  drawSeries($("exp-arrivals-chart"), [col("sent_per_s"), col("lb_invites_per_s")], ["#a0aec0", "#2b6cb0"],
    ["invites sent/s", "new INVITEs/s at the LB"], { xs, marks, widths: [4, 1.5] });
  drawSeries($("exp-calls-chart"), [col("calls_succeeded_per_s"), col("calls_failed_per_s")], ["#38a169", "#c53030"],
    ["calls ok/s", "calls failed/s"], { xs, marks });

  const events = $("exp-events").querySelector("tbody");
  events.innerHTML = "";
  for (const e of data.events) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${e.t_s.toFixed(0)}</td><td>${e.before} -> ${e.after}</td><td>${escape(e.reason)}</td>`;
    events.appendChild(tr);
  }
}

// -- live feed ---------------------------------------------------------------------------

function connectFeed() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/panel`);
  ws.onopen = () => { $("feed").textContent = "live"; $("feed").className = "badge on"; loadExperiment(); };
  ws.onclose = () => { $("feed").textContent = "offline"; $("feed").className = "badge off"; setTimeout(connectFeed, 1000); };
  ws.onmessage = (event) => {
    const snap = JSON.parse(event.data);
    if (snap.type === "experiment") { applyExperiment(snap, false); return; }
    $("connected").textContent = snap.connected;
    renderPods(snap.clients, proxyCounts);
    $("succeeded").textContent = snap.calls.succeeded;
    $("failed").textContent = snap.calls.failed;
    if (snap.run) showRun(snap.run);
    const s = snap.series;
    drawSeries($("live-rates"), [s.map((p) => p.sent_per_s), s.map((p) => p.succeeded_per_s), s.map((p) => p.failed_per_s)],
      ["#2b6cb0", "#38a169", "#c53030"], ["sent/s", "succeeded/s", "failed/s"]);
    drawSeries($("live-lag"), [s.map((p) => p.lag_p50_ms), s.map((p) => p.lag_p99_ms)], ["#805ad5", "#dd6b20"], ["p50", "p99"]);
  };
}

showAuth();
if (location.hash === "#experiment") { exp.shown = true; showTab("experiment"); }
else if (!storedToken()) askForToken("");
connectFeed();
loadScenarios();
refreshClients();
setInterval(refreshClients, 2000);
