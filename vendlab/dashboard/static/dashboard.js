// vendlab dashboard: polls the JSON API every second and redraws every panel (Plotly.react).
// The DOM carries what was drawn, for people and for tests: body[data-refreshes],
// body[data-snapshot] (the store state of the numbers shown), badge[data-state], td[data-col].
"use strict";

const REFRESH_MS = 1000;
const COLORS = {
  kappa: "#1f77b4", lambda: "#e8710a", lambda_speed: "#e8710a", lambda_batch: "#9c4a00",
  lambda_realtime: "#f6ad55", validation: "#6b7280", generated: "#111827",
};
const JOB_LABEL = { kappa: "kappa", lambda_speed: "lambda (speed job)", validation: "validation" };
const ARCH_LABEL = { kappa: "kappa", lambda: "lambda" };
const PLOT_CONFIG = { displayModeBar: false, responsive: true };
const SERIES_PALETTE = ["#1f77b4", "#e8710a", "#6b7280", "#2ca02c", "#9467bd", "#d62728", "#8c564b"];

const body = document.body;
const $ = (id) => document.getElementById(id);
let refreshes = 0;

// ---------------------------------------------------------------------------- helpers
const fmt = (n, digits = 0) => (n == null || Number.isNaN(n)) ? "—"
  : Number(n).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const signed = (n) => (n > 0 ? "+" : "") + fmt(n);
const secs = (ms) => ms == null ? "—" : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);

function noteError(msg) {
  const errs = JSON.parse(body.dataset.errors || "[]");
  errs.push(String(msg));
  body.dataset.errors = JSON.stringify(errs.slice(-5));
}
window.addEventListener("error", (e) => noteError(e.message));

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  return r.json();  // a 503 (no store yet) carries JSON that says why
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function baseLayout(extra = {}) {
  return Object.assign({
    margin: { l: 60, r: 12, t: 28, b: 60 }, font: { size: 12 },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" }, paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)", hovermode: "closest", uirevision: "keep",  // keep zoom across redraws
  }, extra);
}

function emptyLayout(text) {
  return baseLayout({
    xaxis: { visible: false }, yaxis: { visible: false },
    annotations: [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
                    font: { size: 14, color: "#667085" } }],
  });
}

function plot(id, traces, layout) {
  const node = typeof id === "string" ? $(id) : id;
  const { empty, ...rest } = layout;
  node.dataset.traces = String(traces.length);
  if (!node.dataset.observed && window.ResizeObserver) {  // redraw at the new size when the grid reflows
    node.dataset.observed = "1";
    new ResizeObserver(() => { if (node.data) Plotly.Plots.resize(node); }).observe(node);
  }
  Plotly.react(node, traces, traces.length ? baseLayout(rest) : emptyLayout(empty || "no data yet"), PLOT_CONFIG);
}

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

// ---------------------------------------------------------------------------- views
function renderBadge(arch, ex, run) {
  const badge = $("badge-" + arch), sub = $("sub-" + arch);
  badge.dataset.state = ex.state;
  badge.dataset.differsBy = ex.differs_by == null ? "" : String(ex.differs_by);
  const texts = {
    absent: "not in this run", empty: "no sales yet", exact: "EXACT",
    in_flight: "differs by " + fmt(ex.differs_by), differs: "differs by " + fmt(ex.differs_by),
  };
  badge.textContent = texts[ex.state] || ex.state;
  if (ex.state === "absent") {
    sub.textContent = `This data dir has no ${arch} job (run it with vendlab run --arch ${arch} or vendlab demo).`;
    return;
  }
  let s = `${ex.view}: ${fmt(ex.total)} items · validation: ${fmt(ex.validation_total)} items`;
  if (ex.state === "exact") s += " · equal for every product";
  else if (ex.state === "in_flight") {
    const behind = ex.behind_validation_ms ? ` (newest marker ${secs(ex.behind_validation_ms)} behind validation)` : "";
    s += ` · ${ex.products_differing} products differ while the run is in flight${behind}`;
  } else if (ex.state === "differs") {
    s += ` · ${ex.products_differing} products differ after the run drained: a real difference`;
  }
  sub.textContent = s;
}

function validationTicks(products, validation) {
  return {
    name: "validation", type: "scatter", mode: "markers", x: products,
    y: products.map((p) => validation[p] || 0),
    marker: { symbol: "line-ew-open", size: 26, color: COLORS.validation, line: { width: 3, color: COLORS.validation } },
  };
}

function renderArchCharts(v) {
  const P = v.products, V = v.views;
  const kap = V.kappa ? [{ name: "kappa realtime", type: "bar", x: P, y: P.map((p) => V.kappa.realtime[p] || 0),
                          marker: { color: COLORS.kappa } }, validationTicks(P, V.validation)] : [];
  plot("chart-items-kappa", P.length ? kap : [], { barmode: "stack", yaxis: { title: { text: "items" } },
       empty: V.kappa ? "no sales yet" : "no kappa job in this data dir" });
  const lam = V.lambda ? [
    { name: "batch view", type: "bar", x: P, y: P.map((p) => V.lambda.batch[p] || 0), marker: { color: COLORS.lambda_batch } },
    { name: "realtime (after cutoff)", type: "bar", x: P, y: P.map((p) => V.lambda.realtime[p] || 0),
      marker: { color: COLORS.lambda_realtime } },
    validationTicks(P, V.validation)] : [];
  plot("chart-items-lambda", P.length ? lam : [], { barmode: "stack", yaxis: { title: { text: "items" } },
       empty: V.lambda ? "no sales yet" : "no lambda job in this data dir" });
}

function renderItemsTable(v) {
  const cols = [["product", "product"]];
  if (v.present.kappa) cols.push(["kappa_realtime", "kappa realtime"]);
  if (v.present.lambda) cols.push(["lambda_batch", "lambda batch"], ["lambda_realtime", "lambda realtime"],
                                  ["lambda_serving", "lambda serving"]);
  cols.push(["validation", "validation"]);
  if (v.views.manifest) cols.push(["manifest", "generated (manifest)"]);
  if (v.present.kappa) cols.push(["kappa_diff", "kappa − validation"]);
  if (v.present.lambda) cols.push(["lambda_diff", "lambda − validation"]);

  const table = $("items-table");
  const head = el("tr");
  for (const [, label] of cols) head.appendChild(el("th", {}, label));
  table.tHead.replaceChildren(head);

  const totals = {};
  const rows = v.differences.map((r) => {
    const tr = el("tr", { "data-product": r.product });
    for (const [key] of cols) {
      if (key === "product") { tr.appendChild(el("td", { "data-col": key }, r.product)); continue; }
      const val = r[key];
      totals[key] = (totals[key] || 0) + (val || 0);
      const isDiff = key.endsWith("_diff");
      const td = el("td", { "data-col": key, "data-value": String(val) }, isDiff ? signed(val) : fmt(val));
      if (isDiff) td.className = "diff " + (val ? "nonzero" : "zero");
      tr.appendChild(td);
    }
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    tr.appendChild(el("td", { colspan: String(cols.length), class: "empty-note" }, "no sales counted yet"));
    rows.push(tr);
  }
  table.tBodies[0].replaceChildren(...rows);
  const foot = el("tr", { "data-product": "__total__" });
  for (const [key] of cols) {
    if (key === "product") { foot.appendChild(el("td", { "data-col": key }, "total")); continue; }
    foot.appendChild(el("td", { "data-col": key, "data-value": String(totals[key] || 0) },
                        key.endsWith("_diff") ? signed(totals[key] || 0) : fmt(totals[key] || 0)));
  }
  table.tFoot.replaceChildren(foot);
}

function renderDiffChart(v) {
  const P = v.products, traces = [];
  for (const arch of ["kappa", "lambda"]) {
    if (!v.present[arch] || !P.length) continue;
    traces.push({ name: `${arch} − validation`, type: "bar", x: P,
                  y: v.differences.map((r) => r[arch + "_diff"]), marker: { color: COLORS[arch] } });
  }
  const allZero = traces.every((t) => t.y.every((d) => d === 0));
  plot("chart-diff", traces, { barmode: "group", yaxis: { title: { text: "items" }, zeroline: true,
       zerolinewidth: 2, ...(allZero ? { range: [-1, 1] } : {}) }, empty: "no sales yet" });
}

function renderViews(v) {
  body.dataset.snapshot = JSON.stringify(v.snapshot);
  if (!body.dataset.firstSnapshot) body.dataset.firstSnapshot = body.dataset.snapshot;
  $("datadir").textContent = v.data_dir;
  const run = v.run;
  $("run-state").textContent = run == null ? "" : (run.complete ? "· generator finished" : "· generator running")
    + ` · ${fmt(run.events)} events generated (${fmt(run.malformed)} malformed, ${fmt(run.duplicates)} duplicates)`;
  for (const arch of ["kappa", "lambda"]) renderBadge(arch, v.exactness[arch], run);
  renderArchCharts(v);
  renderItemsTable(v);
  renderDiffChart(v);
}

// ---------------------------------------------------------------------------- metrics
function presentJobs(m) {
  return Object.entries(m.jobs).filter(([, j]) => j.present);
}

function renderLatency(m) {
  const traces = [], parts = [];
  for (const [job, j] of presentJobs(m)) {
    if (!j.latency.t.length) continue;
    traces.push({ name: JOB_LABEL[job] || job, type: "scatter", mode: "lines", x: j.latency.t,
                  y: j.latency.ms.map((x) => x / 1000), line: { color: COLORS[job], width: 1.5 } });
    const L = j.latency_ms;
    parts.push(`${JOB_LABEL[job] || job}: p50 ${secs(L.p50)} · p95 ${secs(L.p95)} · p99 ${secs(L.p99)} (${fmt(L.markers)} markers)`);
  }
  $("latency-summary").textContent = parts.join("  |  ");
  plot("chart-latency", traces, { xaxis: { title: { text: "marker created (s since start)" } },
       yaxis: { title: { text: "latency (s)" }, rangemode: "tozero" }, empty: "no latency markers yet" });
}

function renderThroughput(m) {
  const traces = [], parts = [];
  for (const [job, j] of presentJobs(m)) {
    parts.push(`${JOB_LABEL[job] || job}: ${fmt(j.rows_total)} lines in ${fmt(j.micro_batches)} batches`);
    if (!j.throughput.t.length) continue;
    traces.push({ name: JOB_LABEL[job] || job, type: "scatter", mode: "lines+markers", line: { shape: "hv",
                  color: COLORS[job], width: 1.5 }, marker: { size: 4 }, x: j.throughput.t, y: j.throughput.eps,
                  customdata: j.throughput.batch_id,
                  hovertemplate: "batch %{customdata}<br>%{y:,.0f} events/s<extra>%{fullData.name}</extra>" });
  }
  $("throughput-summary").textContent = parts.join("  |  ");
  plot("chart-throughput", traces, { xaxis: { title: { text: "batch applied (s since start)" } },
       yaxis: { title: { text: "events / s" }, rangemode: "tozero" }, empty: "fewer than two micro-batches yet" });
}

function renderDead(m) {
  const jobs = presentJobs(m), reasons = new Set();
  for (const [, j] of jobs) Object.keys(j.dead_letters).forEach((r) => reasons.add(r));
  const expected = m.expected_dead_letters;
  if (expected) Object.keys(expected).forEach((r) => reasons.add(r));
  const R = [...reasons].sort();
  const traces = jobs.map(([job, j]) => ({ name: JOB_LABEL[job] || job, type: "bar", x: R,
    y: R.map((r) => j.dead_letters[r] || 0), marker: { color: COLORS[job] } }));
  if (expected && R.length) traces.push({ name: "generated (manifest)", type: "bar", x: R,
    y: R.map((r) => expected[r] || 0), marker: { color: "rgba(0,0,0,0)", line: { color: COLORS.generated, width: 1.5 } } });
  const parts = jobs.map(([job, j]) => `${JOB_LABEL[job] || job}: ${fmt(sum(j.dead_letters))}`);
  if (expected) parts.push(`generated: ${fmt(sum(expected))}`);
  $("dead-summary").textContent = parts.join(" · ");
  plot("chart-dead", R.length ? traces : [], { barmode: "group", yaxis: { title: { text: "lines" } },
       xaxis: { tickangle: -20 }, empty: "no dead letters" });
}

function renderBatches(m) {
  const runs = m.batch_runs;
  const table = $("batch-table");
  if (!runs.length) {
    $("batch-summary").textContent = m.jobs.lambda_speed && m.jobs.lambda_speed.present
      ? "no batch run has finished yet" : "no lambda batch runs in this data dir";
    table.tHead.replaceChildren();
    table.tBodies[0].replaceChildren();
    plot("chart-batches", [], { empty: "no batch runs" });
    return;
  }
  const last = runs[runs.length - 1];
  const cutoffText = (r) => r.cutoff_bucket <= 0 ? "nothing (cutoff 0)" : r.cutoff_ms == null ? `bucket ${r.cutoff_bucket}`
    : new Date(r.cutoff_ms).toISOString().replace(".000Z", "Z");
  $("batch-summary").textContent = `${runs.length} runs · newest: version ${last.version}, covers events before `
    + `${cutoffText(last)}, read ${fmt(last.events)} events in ${last.seconds.toFixed(1)} s`;
  plot("chart-batches", [{ name: "duration", type: "bar", x: runs.map((r) => "v" + r.version), y: runs.map((r) => r.seconds),
        marker: { color: COLORS.lambda_batch }, customdata: runs.map((r) => [r.version, cutoffText(r), r.events]),
        hovertemplate: "version %{customdata[0]}<br>cutoff %{customdata[1]}<br>%{customdata[2]:,} events<br>%{y:.1f} s<extra></extra>" }],
       { xaxis: { title: { text: "batch view version" }, type: "category" }, yaxis: { title: { text: "duration (s)" }, rangemode: "tozero" } });
  const head = el("tr");
  for (const h of ["version", "cutoff bucket", "covers events before", "published", "events", "duration"]) head.appendChild(el("th", {}, h));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...runs.slice(-6).reverse().map((r) => {
    const tr = el("tr", { "data-version": String(r.version) });
    tr.appendChild(el("td", {}, String(r.version)));
    tr.appendChild(el("td", {}, String(r.cutoff_bucket)));
    tr.appendChild(el("td", {}, cutoffText(r)));
    tr.appendChild(el("td", {}, r.published_s == null ? "—" : `${r.published_s.toFixed(1)} s`));
    tr.appendChild(el("td", {}, fmt(r.events)));
    tr.appendChild(el("td", {}, `${r.seconds.toFixed(1)} s`));
    return tr;
  }));
}

function renderMetrics(m) {
  renderLatency(m);
  renderThroughput(m);
  renderDead(m);
  renderBatches(m);
}

// ---------------------------------------------------------------------------- owner's questions
function panelNode(p) {
  let node = $("panel-" + p.id);
  if (!node) {
    node = el("div", { class: "panel", id: "panel-" + p.id, "data-kind": p.kind });
    node.appendChild(el("h3", {}, p.title));
    node.appendChild(el("p", { class: "sub" }, p.help));
    node.appendChild(el("div", { class: "notes", id: "panel-notes-" + p.id }));
    node.appendChild(el("div", { class: p.kind === "table" ? "table-wrap" : "chart small", id: "panel-body-" + p.id }));
    if (p.kind !== "table") node.appendChild(el("div", { class: "legend", id: "panel-legend-" + p.id }));
    $("owner-panels").appendChild(node);
  }
  return node;
}

// What the answer rests on, and its caveats (vendlab answer's "basis" and "caveats" of the panel's question).
function renderNotes(p) {
  const notes = $("panel-notes-" + p.id), parts = [];
  if (p.basis) parts.push(el("p", { class: "basis" }, "Rests on: " + p.basis));
  for (const c of p.caveats || []) parts.push(el("p", { class: "caveat" }, "⚠ " + c));
  notes.replaceChildren(...parts);
  notes.parentNode.dataset.caveats = String((p.caveats || []).length);
}

const HOUR_MS = 3600 * 1000;
const isHourKey = (k) => /^\d{4}-\d\d-\d\d \d\d:\d\d$/.test(k);

// A time axis a person reads: whole hours (never 05:59:59.9995), the day only where the span needs it.
function timeAxis(keys) {
  const t = keys.map((k) => Date.parse(k.replace(" ", "T") + ":00Z"));
  const lo = Math.min(...t), hi = Math.max(...t), span = (hi - lo) / HOUR_MS;
  const dtick = span <= 12 ? HOUR_MS : span <= 36 ? 3 * HOUR_MS : span <= 96 ? 12 * HOUR_MS : 24 * HOUR_MS;
  const tickformat = span <= 24 ? "%H:%M" : span <= 96 ? "%a %H:%M" : "%a %-d";
  return { type: "date", range: [lo - HOUR_MS / 2, hi + HOUR_MS / 2], dtick, tick0: "2000-01-01", tickformat,
           tickangle: 0, hoverformat: "%a %H:%M UTC", automargin: true };
}

function renderPanel(p) {
  const node = panelNode(p), target = $("panel-body-" + p.id);
  node.dataset.error = p.error || "";
  renderNotes(p);
  if (p.error) { target.replaceChildren(el("div", { class: "error" }, "this panel failed: " + p.error)); return; }
  const data = p.data || {};
  if (p.kind === "table") {
    const t = el("table");
    const head = el("tr");
    (data.columns || []).forEach((c) => head.appendChild(el("th", {}, c)));
    t.appendChild(head);
    for (const row of data.rows || []) {
      const tr = el("tr");
      // numbers right-aligned; long texts (places, lists of products) may wrap, short ones (times) never
      row.forEach((c) => tr.appendChild(typeof c === "number" ? el("td", { class: "num" }, fmt(c * p.scale, p.scale < 1 ? 2 : 0))
        : el("td", { class: String(c).length > 16 ? "text wrap" : "text" }, String(c))));
      t.appendChild(tr);
    }
    const none = (p.caveats || []).length ? "nothing to show yet: see the caveats above" : "none";
    target.replaceChildren((data.rows || []).length ? t : el("div", { class: "empty-note" }, none));
    return;
  }
  const names = Object.keys(data);
  const keys = [...new Set(names.flatMap((n) => Object.keys(data[n])))].sort();
  const traces = keys.length ? names.map((n, i) => ({
    name: n, type: p.kind === "line" ? "scatter" : "bar", mode: p.kind === "line" ? "lines+markers" : undefined,
    x: keys, y: keys.map((k) => (data[n][k] || 0) * p.scale),
    marker: { color: COLORS[n] || SERIES_PALETTE[i % SERIES_PALETTE.length] },
  })) : [];
  const xaxis = keys.length && keys.every(isHourKey) ? timeAxis(keys) : { automargin: true };
  plot(target, traces, { barmode: "group", xaxis, yaxis: { title: { text: p.unit }, automargin: true },
       showlegend: false, margin: { l: 60, r: 12, t: 10, b: 40 }, empty: "no data yet" });
  // The legend is plain HTML under the chart: it wraps with the card's width, where plotly's own legend
  // covered the plot (above it) or scrolled (below it) in a narrow card with long place names.
  const legend = $("panel-legend-" + p.id);
  legend.replaceChildren(...(traces.length > 1 ? traces.map((t) => {
    const item = el("span", { class: "item" });
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = t.marker.color;
    item.append(swatch, document.createTextNode(t.name));
    return item;
  }) : []));
}

// How far each owner card (and each table in it) would need to scroll sideways: the page writes it
// into data-overflow-x (px; 0 = fits), for people and for the browser test at 1280 and 1920 px.
function measureOverflow() {
  for (const n of document.querySelectorAll("#owner .panel, #owner .table-wrap, .card")) {
    n.dataset.overflowX = String(Math.max(0, n.scrollWidth - n.clientWidth));
  }
}

function renderPanels(answer) {
  answer.panels.forEach(panelNode);  // lay out every card first, so each chart is drawn at its final size
  for (const p of answer.panels) renderPanel(p);
  measureOverflow();
}

// ---------------------------------------------------------------------------- waiting / loop
function renderWaiting(v) {
  $("datadir").textContent = v.data_dir || "";
  for (const arch of ["kappa", "lambda"]) {
    const b = $("badge-" + arch);
    b.dataset.state = "empty";
    b.textContent = "no views yet";
    $("sub-" + arch).textContent = v.error || "";
  }
}

async function refresh() {
  try {
    const [v, m, p] = await Promise.all([getJSON("/api/views"), getJSON("/api/metrics"), getJSON("/api/panels")]);
    if (v.store === "ok") {
      renderViews(v);
      if (m.store === "ok") renderMetrics(m);
      if (p.store === "ok") renderPanels(p);
      setStatus("live", "live · updated " + new Date(v.generated_ms).toLocaleTimeString("en-GB"));
    } else {
      renderWaiting(v);
      setStatus(v.store === "waiting" ? "waiting" : "error", "waiting for views: " + (v.error || v.store));
    }
    refreshes += 1;
    body.dataset.refreshes = String(refreshes);
  } catch (e) {
    if (e instanceof TypeError && /fetch/i.test(e.message)) {
      setStatus("offline", "dashboard server not reachable; retrying");
    } else {
      noteError(e && e.stack ? e.stack : e);
      setStatus("error", "drawing failed: " + e);
    }
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
