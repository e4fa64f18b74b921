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

function drawSeries(canvas, series, colours, labels) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 32;
  ctx.clearRect(0, 0, w, h);
  let max = 0, n = 0;
  for (const s of series) { for (const v of s) { if (v != null && v > max) max = v; } n = Math.max(n, s.length); }
  max = max > 0 ? max * 1.1 : 1;
  ctx.strokeStyle = "#cbd5e0"; ctx.fillStyle = "#4a5568"; ctx.font = "11px sans-serif";
  ctx.beginPath(); ctx.moveTo(pad, 4); ctx.lineTo(pad, h - pad + 4); ctx.lineTo(w - 4, h - pad + 4); ctx.stroke();
  ctx.fillText(max.toFixed(max < 10 ? 1 : 0), 2, 12); ctx.fillText("0", 2, h - pad + 4);
  series.forEach((s, k) => {
    ctx.strokeStyle = colours[k]; ctx.lineWidth = 1.5; ctx.beginPath();
    let started = false;
    s.forEach((v, i) => {
      if (v == null) return;
      const x = pad + (n > 1 ? (i / (n - 1)) * (w - pad - 8) : 0);
      const y = h - pad + 4 - (v / max) * (h - pad - 8);
      if (!started) { ctx.moveTo(x, y); started = true; } else { ctx.lineTo(x, y); }
    });
    ctx.stroke();
    ctx.fillStyle = colours[k]; ctx.fillText(labels[k], pad + 8 + k * 120, h - 8);
  });
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
    out.innerHTML = `<p class="ok">stored ${stored.name}: ${stored.rows} invites</p>`;
    await loadScenarios(stored.name);
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

// -- live feed ---------------------------------------------------------------------------

function connectFeed() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/panel`);
  ws.onopen = () => { $("feed").textContent = "live"; $("feed").className = "badge on"; };
  ws.onclose = () => { $("feed").textContent = "offline"; $("feed").className = "badge off"; setTimeout(connectFeed, 1000); };
  ws.onmessage = (event) => {
    const snap = JSON.parse(event.data);
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
if (!storedToken()) askForToken("");
connectFeed();
loadScenarios();
refreshClients();
setInterval(refreshClients, 2000);
