// The search page: POST /search, then each hit's title and text from GET /documents/{id}.
"use strict";

const STAGES = ["bm25", "sparse", "dense", "colbert", "rerank"];
const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
  children.forEach((child) => node.append(child));
  return node;
}

function headers() {
  const key = $("api-key").value;
  return key ? { "Content-Type": "application/json", "X-API-Key": key } : { "Content-Type": "application/json" };
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.error || response.statusText}`);
  return body;
}

function bar(fraction, kind) {
  const width = Math.max(0, Math.min(1, fraction)) * 100;
  return element("div", { class: `bar ${kind}`, title: `${width.toFixed(0)}%` },
    element("span", { style: `width: ${width}%` }));
}

// A stage's scores are drawn against the largest of that stage among the hits (normalized ones against 1 at
// least: min_max lies in [0, 1], z_score can exceed it).
function stageTable(hit, max) {
  const table = element("table", { class: "stages" });
  STAGES.filter((stage) => stage in hit.stages).forEach((stage) => {
    const { raw, normalized, rank } = hit.stages[stage];
    table.append(element("tr", { "data-stage": stage },
      element("td", {}, stage),
      element("td", {}, `#${rank ?? "-"}`),
      element("td", {}, `raw ${raw.toFixed(3)}`),
      element("td", {}, bar(max.raw[stage] > 0 ? raw / max.raw[stage] : 0, "raw")),
      element("td", {}, normalized === null ? "norm -" : `norm ${normalized.toFixed(3)}`),
      element("td", {}, bar((normalized ?? 0) / Math.max(1, max.normalized[stage]), "normalized"))));
  });
  return table;
}

function explainView(explain) {
  const details = element("details", { class: "explain", open: "" }, element("summary", {}, "explain"));
  const line = (label, items) => {
    const paragraph = element("p", { "data-explain": label }, `${label}: `);
    if (!items.length) paragraph.append("none");
    items.forEach((item) => paragraph.append(element("code", {}, item)));
    details.append(paragraph);
  };
  line("bm25", explain.bm25_terms.map((t) => `${t.term} ${t.score.toFixed(2)}`));
  line("sparse", explain.sparse_tokens.map((t) => `${t.token} ${t.query_weight.toFixed(2)}×${t.doc_weight.toFixed(2)}`));
  const words = explain.colbert.filter((a) => !/^\[.*\]$/.test(a.query_token));
  if (explain.colbert.length) line("colbert", words.map((a) => `${a.query_token}→${a.document_token} ${a.similarity.toFixed(2)}`));
  return details;
}

async function show(result) {
  const max = { raw: {}, normalized: {} };
  result.hits.forEach((hit) => Object.entries(hit.stages).forEach(([stage, s]) => {
    max.raw[stage] = Math.max(max.raw[stage] ?? 0, s.raw);
    max.normalized[stage] = Math.max(max.normalized[stage] ?? 0, s.normalized ?? 0);
  }));
  const corrected = result.spelling?.corrections.length
    ? [element("li", { id: "searched" }, `searched for “${result.spelling.query}”`)] : [];
  $("notes").replaceChildren(...corrected, ...result.notes.map((note) => element("li", {}, note)));
  const documents = await Promise.all(result.hits.map((hit) =>
    call(`/documents/${encodeURIComponent(hit.id)}`).catch(() => ({ title: "", text: "" }))));
  $("hits").replaceChildren(...result.hits.map((hit, i) => {
    const item = element("li", { class: "hit", "data-id": hit.id },
      element("span", { class: "title" }, documents[i].title || hit.id), " ",
      element("span", { class: "doc-id" }, hit.id), " ",
      element("span", { class: "score" }, `score ${hit.score.toFixed(4)}`),
      element("p", { class: "passage" }, documents[i].text.slice(0, 300)),
      stageTable(hit, max));
    if (hit.explain) item.append(explainView(hit.explain));
    return item;
  }));
}

$("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("status");
  status.className = "";
  status.textContent = "searching…";
  const body = { query: $("query").value, mode: $("mode").value, k: Number($("k").value), explain: $("explain").checked };
  if ($("spelling").checked) body.spelling = true;  // unchecked: the server's default (NEURANK_SPELLING)
  try {
    const result = await call("/search", { method: "POST", body: JSON.stringify(body) });
    await show(result);
    status.textContent = `${result.hits.length} hits in ${result.timings_ms.total.toFixed(1)} ms`;
  } catch (failure) {
    status.className = "error";
    status.textContent = failure.message;
    $("hits").replaceChildren();
  }
});
