// The web view's only script: fills the overview from /api/overview whenever the server-sent
// events stream says something changed, and sends the labelling buttons' POSTs. No framework,
// no build step: it is served as is.
"use strict";

const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};
const fmt = (v) => (v === null || v === undefined ? "–" : (typeof v === "number" ? Number(v.toPrecision(4)) : v));
// stream-clock seconds: epoch seconds (live input) as UTC time, stream offsets as they are
const when = (t) => (typeof t === "number" && t > 1e8 ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 23) : fmt(t));
const SVG = "http://www.w3.org/2000/svg";

function sparkline(trace, threshold) {
  const w = 160, h = 28, svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("class", "spark");
  if (!trace.length) return svg;
  const top = Math.max(...trace, threshold || 0) * 1.1 || 1;
  const y = (v) => (h - (v / top) * h).toFixed(1);
  const x = (i) => (trace.length > 1 ? (i * w) / (trace.length - 1) : w / 2).toFixed(1);
  if (threshold) {
    const t = document.createElementNS(SVG, "line");
    t.setAttribute("x1", 0); t.setAttribute("x2", w); t.setAttribute("y1", y(threshold));
    t.setAttribute("y2", y(threshold)); t.setAttribute("class", "thr"); svg.append(t);
  }
  const p = document.createElementNS(SVG, "polyline");
  p.setAttribute("points", trace.map((v, i) => `${x(i)},${y(v)}`).join(" "));
  p.setAttribute("class", "score"); svg.append(p);
  const dot = document.createElementNS(SVG, "circle");  // the latest score, visible even alone
  dot.setAttribute("cx", x(trace.length - 1)); dot.setAttribute("cy", y(trace[trace.length - 1]));
  dot.setAttribute("r", 2.5); svg.append(dot);
  return svg;
}

const view = { page: 0, q: "", sort: "severity", busy: false, again: false };

async function refresh() {
  if (view.busy) { view.again = true; return; }
  view.busy = true;
  try {
    const qs = new URLSearchParams({ page: view.page, q: view.q, sort: view.sort });
    const data = await (await fetch(`/api/overview?${qs}`)).json();
    view.page = data.page;
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    document.getElementById("pageinfo").textContent =
      `page ${data.page + 1} of ${pages} · ${data.total} streams · ${data.unhealthy} not ok` +
      (data.unscored ? ` · ${data.unscored} more in the workers without a live score (raise health.stream_metrics)` : "");
    const errs = Object.entries(data.feed_errors).map(([k, v]) => `${k}: ${v}`).join(" | ");
    document.getElementById("feederrors").textContent = errs;
    const body = document.querySelector("#streams tbody");
    body.replaceChildren(...data.streams.map((s) => el("tr", { class: `state-${s.state}`, "data-stream": s.stream },
      el("td", {}, s.stream),
      el("td", { class: "state" }, s.state + (s.state === "quiet" && s.last_change_s ? ` (${s.last_change_s} s)` : "")),
      el("td", {}, `${s.scorer || ""} ${s.model_version || "–"}`),
      el("td", { class: s.ratio > 1 ? "over" : "" }, `${fmt(s.score)} / ${fmt(s.threshold)}`),
      el("td", {}, sparkline(s.trace, s.threshold)),
      el("td", {}, s.health.map((h) => h.kind).join(", ") || "ok"),
      el("td", {}, ...s.open_events.map((e) =>
        el("a", { href: `/event/${e.event_id}`, class: "open-event" }, `severity ${fmt(e.severity)}`))))));
    const evs = await (await fetch("/api/events?limit=30")).json();
    document.querySelector("#events tbody").replaceChildren(...evs.map((e) => el("tr", { class: `ev-${e.status}` },
      el("td", {}, el("a", { href: `/event/${e.event_id}`, class: "event-link", "data-stream": e.stream }, e.event_id)),
      el("td", {}, e.status), el("td", {}, e.stream), el("td", {}, when(e.start)),
      el("td", {}, fmt(e.severity)), el("td", {}, fmt(e.peak_score)))));
  } catch (err) {
    document.getElementById("live").textContent = `error: ${err}`;
  } finally {
    view.busy = false;
    if (view.again) { view.again = false; refresh(); }
  }
}

function overviewPage() {
  document.getElementById("filter").addEventListener("input", (e) => { view.q = e.target.value; view.page = 0; refresh(); });
  document.getElementById("sort").addEventListener("change", (e) => { view.sort = e.target.value; refresh(); });
  document.getElementById("prev").addEventListener("click", () => { view.page = Math.max(0, view.page - 1); refresh(); });
  document.getElementById("next").addEventListener("click", () => { view.page += 1; refresh(); });
  const live = document.getElementById("live");
  const src = new EventSource("/api/updates");
  src.onopen = () => { live.textContent = "live"; };
  src.onerror = () => { live.textContent = "reconnecting…"; };
  src.onmessage = () => refresh();
  refresh();
}

function eventPage() {
  const box = document.getElementById("labelling");
  if (!box) return;
  const who = document.getElementById("who");
  who.value = localStorage.getItem("monitor-ui-who") || "";
  const send = async (label) => {
    localStorage.setItem("monitor-ui-who", who.value);
    const out = document.getElementById("label-result");
    const r = await fetch("/api/label", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ event_id: box.dataset.event, label, by: who.value,
                             note: document.getElementById("note").value }),
    });
    const rec = await r.json();
    out.textContent = r.ok ? `labelled ${rec.label} by ${rec.labelled_by} at ${rec.labelled_at}` : `refused: ${rec.error}`;
    out.className = r.ok ? "ok" : "error";
  };
  document.getElementById("label-fault").addEventListener("click", () => send("fault"));
  document.getElementById("label-normal").addEventListener("click", () => send("normal"));
}

if (document.body.dataset.page === "overview") overviewPage();
if (document.body.dataset.page === "event") eventPage();
