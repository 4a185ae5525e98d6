// scatlas serve: upload -> background annotation -> heatmap -> cluster views. No libraries.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let job = null;
let clusterData = null;

function el(tag, attrs = {}, text = "") {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// ------------------------------------------------------------------ release
async function loadRelease() {
  const r = await getJSON("/api/release");
  const m = r.manifest;
  $("release-version").textContent = m.version;
  $("release-line").textContent = `${m.n_cells} reference cells, ${r.types} cell types, ` +
    `${m.n_genes} genes; model ${m.model} (${m.metric}), ${m.index_kind} index`;
  $("demo").hidden = !r.demo_query;
  const gate = r.quality_gate || {};
  const details = $("release-details");
  details.append(el("p", { id: "gate" }, `Quality gate: ${gate.passed ? "passed" : "not passed"} — ${gate.reason || ""}`));
  const metrics = el("table", { id: "release-metrics" });
  for (const [k, v] of Object.entries(r.metrics)) {
    if (typeof v === "object") continue;
    const row = el("tr");
    row.append(el("th", {}, k), el("td", {}, typeof v === "number" ? v.toFixed(4).replace(/\.?0+$/, "") : String(v)));
    metrics.append(row);
  }
  details.append(el("h3", {}, "Evaluation of the published model"), metrics);
  const manifest = el("details");
  manifest.append(el("summary", {}, `Manifest (version ${m.version}, created ${m.created}, ${r.n_files} files with sha256)`),
    el("pre", { id: "manifest" }, JSON.stringify(m, null, 1)));
  details.append(manifest);
}

// ------------------------------------------------------------------ jobs
async function submit(form) {
  showError("");
  $("results").hidden = true;
  $("cluster-panel").hidden = true;
  try {
    const started = await getJSON("/api/jobs", { method: "POST", body: form });
    job = started.id;
    $("progress-line").hidden = false;
    poll();
  } catch (err) {
    showError(err.message);
  }
}

async function poll() {
  const s = await getJSON(`/api/jobs/${job}`);
  $("progress").value = s.progress;
  $("status").textContent = `${s.name}: ${s.message}`;
  if (s.state === "failed") {
    showError(s.error);
  } else if (s.state === "done") {
    showResult(await getJSON(`/api/jobs/${job}/result`));
  } else {
    setTimeout(poll, 400);
  }
}

// ------------------------------------------------------------------ heatmap
function colourScale(v) {  // 0 -> white, 1 -> dark blue
  const t = Math.max(0, Math.min(1, v));
  return `rgb(${Math.round(255 - 220 * t)},${Math.round(255 - 190 * t)},${Math.round(255 - 90 * t)})`;
}

function drawHeatmap(h) {
  const rows = h.values.length, cols = h.types.length;
  const height = Math.max(120, Math.min(640, rows * 4));
  const cellW = 26, rowH = height / Math.max(rows, 1);
  const canvas = $("heatmap");
  canvas.width = cols * cellW; canvas.height = height;
  const ctx = canvas.getContext("2d");
  h.values.forEach((row, i) => row.forEach((v, j) => {
    ctx.fillStyle = colourScale(v); ctx.fillRect(j * cellW, i * rowH, cellW, Math.ceil(rowH));
  }));
  const labels = $("heatmap-types");
  labels.replaceChildren();
  labels.style.width = `${cols * cellW}px`;
  h.types.forEach((t, j) => {
    const s = el("span", { title: t.id }, t.label);
    s.style.left = `${j * cellW + cellW / 2}px`;
    labels.append(s);
  });
  drawDendrogram(h.dendrogram, rows, height);
  drawBand(h.cell_cluster, rowH, height);
}

function drawDendrogram(d, rows, height) {
  const svg = $("dendrogram");
  svg.replaceChildren();
  svg.setAttribute("height", height);
  if (!d.icoord) return;
  const maxD = Math.max(1e-9, ...d.dcoord.flat());
  const x = (dist) => 155 - 150 * dist / maxD;
  const y = (pos) => (pos - 5) / 10 * (height / rows) + height / rows / 2;
  d.icoord.forEach((ic, k) => {
    const dc = d.dcoord[k];
    const points = ic.map((p, i) => `${x(dc[i])},${y(p)}`).join(" ");
    svg.append(el("svg:polyline", { points, fill: "none", stroke: "#555", "stroke-width": 1 }));
  });
}

function drawBand(cells, rowH, height) {
  const svg = $("cluster-band");
  svg.replaceChildren();
  svg.setAttribute("height", height);
  let start = 0;
  for (let i = 1; i <= cells.length; i++) {
    if (i === cells.length || cells[i] !== cells[start]) {
      const c = cells[start];
      const rect = el("svg:rect", { x: 0, y: start * rowH, width: 18, height: (i - start) * rowH,
        fill: PALETTE[c % PALETTE.length], "data-cluster": c, class: "band" });
      rect.append(el("svg:title", {}, `cluster ${c}`));
      rect.addEventListener("click", () => selectCluster(c));
      svg.append(rect);
      start = i;
    }
  }
}

function showResult(r) {
  $("results").hidden = false;
  $("result-name").textContent = r.name;
  const g = r.gene_overlap || {};
  $("result-summary").textContent = `${r.heatmap.n_cells} cells (${r.heatmap.n_shown} shown), ` +
    `${r.n_novel} flagged novel; genes matched ${g.n_matched}/${g.n_reference_genes} by ${g.key}.`;
  $("download-h5ad").href = `/api/jobs/${job}/download/h5ad`;
  $("download-csv").href = `/api/jobs/${job}/download/csv`;
  drawHeatmap(r.heatmap);
  const list = $("cluster-list");
  list.replaceChildren();
  r.heatmap.clusters.forEach((c) => {
    const b = el("button", { type: "button", class: "cluster-button", id: `cluster-${c.cluster}`, "data-cluster": c.cluster },
      `cluster ${c.cluster} (${c.n_cells} cells)`);
    b.style.background = PALETTE[c.cluster % PALETTE.length] + "33";
    b.addEventListener("click", () => selectCluster(c.cluster));
    list.append(b);
  });
  drawDistribution(r.distribution);
  drawSclstm(r.sclstm_clusters);
}

function drawDistribution(rows) {
  const svg = $("distribution");
  svg.replaceChildren();
  const max = Math.max(1, ...rows.map((r) => r.n_cells));
  svg.setAttribute("width", 640); svg.setAttribute("height", rows.length * 20 + 4);
  rows.forEach((r, i) => {
    const g = el("svg:g", { class: "bar" });
    g.append(el("svg:text", { x: 196, y: i * 20 + 14, "text-anchor": "end", "font-size": 12 }, r.type),
      el("svg:rect", { x: 200, y: i * 20 + 3, width: 380 * r.n_cells / max, height: 14, fill: "#4a78b5" }),
      el("svg:text", { x: 204 + 380 * r.n_cells / max, y: i * 20 + 14, "font-size": 12 }, String(r.n_cells)));
    svg.append(g);
  });
}

function drawSclstm(rows) {
  const box = $("sclstm-clusters");
  box.replaceChildren();
  if (!rows.length) return;
  const t = el("table");
  t.append(el("tr")).append(...["ScLSTM cluster", "cells", "novel share", "candidate new type", "markers"].map((h) => el("th", {}, h)));
  rows.forEach((r) => {
    const tr = el("tr");
    tr.append(...[r.cluster, r.n_cells, r.novel_share, r.candidate_new_type ? "yes" : "", r.markers].map((v) => el("td", {}, String(v))));
    t.append(tr);
  });
  box.append(el("h3", {}, "ScLSTM clusters"), t);
}

// ------------------------------------------------------------------ one cluster
async function selectCluster(c) {
  document.querySelectorAll(".cluster-button").forEach((b) => b.classList.toggle("selected", Number(b.dataset.cluster) === c));
  clusterData = await getJSON(`/api/jobs/${job}/clusters/${c}`);
  $("cluster-panel").hidden = false;
  $("cluster-title").textContent = `Cluster ${c}: ${clusterData.n_cells} cells, ${clusterData.n_novel} novel; ` +
    `retrieved types: ${clusterData.types.map((t) => t.label).join(", ") || "none"}`;
  drawScatter();
  drawStudies(clusterData.studies);
  drawDag(clusterData.dag);
  drawDE(clusterData.de);
}

function drawScatter() {
  const svg = $("scatter");
  svg.replaceChildren();
  const by = $("colour-by").value;
  const pts = clusterData.points;
  if (!pts.length) return;
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (v) => 20 + 520 * (v - x0) / Math.max(x1 - x0, 1e-9);
  const sy = (v) => 400 - 380 * (v - y0) / Math.max(y1 - y0, 1e-9);
  const keys = [...new Set(pts.map((p) => p[by]))];
  const colour = (k) => PALETTE[keys.indexOf(k) % PALETTE.length];
  for (const p of pts) {
    const attrs = { cx: sx(p.x), cy: sy(p.y), r: p.set === "query" ? 4 : 2.5, fill: colour(p[by]),
      class: `point ${p.set}`, "fill-opacity": p.set === "query" ? 0.95 : 0.45 };
    if (p.set === "query") { attrs.stroke = "#000"; attrs["stroke-width"] = 0.6; }
    svg.append(el("svg:circle", attrs));
  }
  const legend = $("scatter-legend");
  legend.replaceChildren(...keys.map((k) => {
    const s = el("span"); const i = el("i"); i.style.background = colour(k);
    s.append(i, document.createTextNode(k)); return s;
  }));
  legend.append(el("span", {}, "(outlined, larger: query cells)"));
}

function drawStudies(rows) {
  const body = $("studies").querySelector("tbody");
  body.replaceChildren();
  rows.forEach((r) => {
    const tr = el("tr");
    const link = r.url ? el("a", { href: r.url, target: "_blank", rel: "noopener" }, r.study) : document.createTextNode(r.study);
    const td = el("td"); td.append(link);
    tr.append(td, el("td", {}, r.similarity.toFixed(3)), el("td", {}, r.title || ""));
    body.append(tr);
  });
}

function drawDag(dag) {
  const svg = $("dag");
  svg.replaceChildren();
  if (!dag.nodes.length) return;
  const layers = {};
  dag.nodes.forEach((n) => { (layers[n.depth] = layers[n.depth] || []).push(n); });
  const depths = Object.keys(layers).map(Number).sort((a, b) => a - b);
  const W = 170, H = 56, pos = {};
  const width = Math.max(...depths.map((d) => layers[d].length)) * W + 20;
  depths.forEach((d, row) => layers[d].forEach((n, i) => {
    const offset = (width - layers[d].length * W) / 2;
    pos[n.id] = { x: offset + i * W + 10, y: row * H + 10 };
  }));
  svg.setAttribute("width", width); svg.setAttribute("height", depths.length * H + 20);
  for (const e of dag.edges) {
    const a = pos[e.child], b = pos[e.parent];
    svg.append(el("svg:line", { x1: a.x + 75, y1: a.y, x2: b.x + 75, y2: b.y + 30, class: "dag-edge" }));
  }
  for (const n of dag.nodes) {
    const g = el("svg:g", { class: `dag-node${n.highlight ? " highlight" : ""}`, "data-id": n.id });
    const p = pos[n.id];
    g.append(el("svg:rect", { x: p.x, y: p.y, width: 150, height: 30, rx: 4 }));
    g.append(el("svg:text", { x: p.x + 5, y: p.y + 13 }, n.label.length > 26 ? n.label.slice(0, 25) + "…" : n.label));
    g.append(el("svg:text", { x: p.x + 5, y: p.y + 25, fill: "#666" }, n.id));
    g.append(el("svg:title", {}, `${n.label} (${n.id})`));
    svg.append(g);
  }
}

function matrixCanvas(values, max) {
  const rows = values.length, cols = rows ? values[0].length : 0;
  const c = el("canvas");
  c.width = Math.max(1, cols * 8); c.height = Math.max(1, rows * 14);
  const ctx = c.getContext("2d");
  values.forEach((row, i) => row.forEach((v, j) => {
    ctx.fillStyle = colourScale(v / max); ctx.fillRect(j * 8, i * 14, 8, 14);
  }));
  return c;
}

function drawDE(types) {
  const box = $("de");
  box.replaceChildren();
  if (!types.length) { box.append(el("p", { class: "muted" }, "The release has no DE table for these types.")); return; }
  for (const t of types) {
    const div = el("div", { class: "de-type" });
    const label = (clusterData.types.find((x) => x.id === t.term) || {}).label || t.term;
    div.append(el("h4", {}, `${label} (${t.term})`));
    const maps = el("div", { class: "de-maps" });
    const genes = el("div", { class: "de-genes" });
    t.genes.forEach((g) => genes.append(el("div", {}, g)));
    const qMax = Math.max(1e-9, ...t.query_expression.flat());
    const rMax = Math.max(1e-9, ...t.reference_logfc.flat());
    const q = matrixCanvas(t.query_expression, qMax); q.title = "this cluster's cells (log1p CP10k)";
    const r = matrixCanvas(t.reference_logfc, rMax); r.title = `reference log fold change: ${t.reference_studies.join(", ")}`;
    q.classList.add("de-query"); r.classList.add("de-reference");
    maps.append(genes, q, r);
    div.append(maps, el("p", { class: "muted" }, `left: ${t.query_expression[0] ? t.query_expression[0].length : 0} cells of the cluster; right: log fold change in ${t.reference_studies.length} reference studies`));
    if (t.go.length) {
      const go = el("table", { class: "go" });
      t.go.forEach((row) => { const tr = el("tr"); tr.append(...Object.values(row).slice(0, 4).map((v) => el("td", {}, String(v)))); go.append(tr); });
      div.append(el("h5", {}, "GO terms enriched in the up genes"), go);
    }
    box.append(div);
  }
}

// ------------------------------------------------------------------ wiring
$("upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!$("file").files.length) { showError("choose an .h5ad file first"); return; }
  const form = new FormData();
  form.append("file", $("file").files[0]);
  submit(form);
});
$("demo").addEventListener("click", () => { const f = new FormData(); f.append("demo", "1"); submit(f); });
$("colour-by").addEventListener("change", () => { if (clusterData) drawScatter(); });
loadRelease().catch((err) => showError(`cannot load the release: ${err.message}`));
