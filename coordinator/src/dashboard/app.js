// The fedcredit dashboard: the job list at /, one job at /jobs/<id>.
// Reads /api/jobs and /api/jobs/<id> from this server only; draws charts
// as inline SVG. Every text goes in through textContent (never innerHTML):
// ids and reasons come from jobs and members.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const main = document.getElementById("main");

// A DOM element: el("td", {class: "x"}, "text", child, ...).
function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function table(headers, rows, attrs) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

function state(s) {
  return el("span", { class: "state state-" + s }, s);
}

const num = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

function seconds(ms) {
  return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
}

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

// ---- the job list ---------------------------------------------------------

function jobList(jobs) {
  if (jobs.length === 0) return el("p", { class: "muted" }, "No jobs yet.");
  return table(
    ["job", "kind", "state", "round", "phase", "rounds done", "privacy (ε spent / budget)", "why it failed"],
    jobs.map((j) => [
      el("a", { href: "/jobs/" + encodeURIComponent(j.id) }, j.id),
      j.kind,
      state(j.state),
      j.round + (j.attempt ? " (attempt " + j.attempt + ")" : ""),
      j.phase || "",
      j.rounds_completed,
      j.privacy ? num(j.privacy[0], 3) + " / " + num(j.privacy[1], 3) : "",
      j.failure || "",
    ]),
    { id: "jobs" });
}

async function showList() {
  const jobs = await getJson("/api/jobs");
  main.replaceChildren(el("h1", {}, "Jobs"), jobList(jobs));
  document.title = "fedcredit: jobs";
}

// ---- charts ---------------------------------------------------------------

// Chart size and margins (the left one holds the tick labels and the axis title).
const W = 380, H = 300, PAD = 40, LEFT = 56;
const sx = (x) => LEFT + x * (W - LEFT - PAD);
const sy = (y) => H - PAD - y * (H - 2 * PAD);

function path(points, cls) {
  const d = points.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join("");
  return el("svg:path", { d, class: cls });
}

function axes(svg, xLabel, yLabel) {
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("svg:line", { class: "grid", x1: sx(t), x2: sx(t), y1: sy(0), y2: sy(1) }));
    svg.append(el("svg:line", { class: "grid", x1: sx(0), x2: sx(1), y1: sy(t), y2: sy(t) }));
    svg.append(el("svg:text", { x: sx(t), y: sy(0) + 14, "text-anchor": "middle" }, t));
    svg.append(el("svg:text", { x: sx(0) - 6, y: sy(t) + 4, "text-anchor": "end" }, t));
  }
  svg.append(el("svg:path", { class: "axis", d: `M${sx(0)},${sy(1)}V${sy(0)}H${sx(1)}` }));
  svg.append(el("svg:text", { x: sx(0.5), y: H - 6, "text-anchor": "middle" }, xLabel));
  svg.append(el("svg:text", { x: 14, y: H / 2, transform: `rotate(-90 14 ${H / 2})`, "text-anchor": "middle" }, yLabel));
}

function rocChart(curves, auc) {
  const svg = el("svg:svg", { class: "chart", id: "roc-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  svg.append(el("svg:title", {}, "ROC curve"));
  axes(svg, "false-positive rate", "true-positive rate");
  svg.append(path([[0, 0], [1, 1]], "diag"));
  svg.append(path(curves.roc, "roc"));
  svg.append(el("svg:text", { x: sx(0.55), y: sy(0.1) }, "AUC " + num(auc, 4)));
  return svg;
}

function ksChart(curves) {
  const svg = el("svg:svg", { class: "chart", id: "ks-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  svg.append(el("svg:title", {}, "KS: the classes' score distributions"));
  axes(svg, "score threshold", "share of the class below it");
  svg.append(path(curves.cdf.map((p) => [p[0], p[1]]), "pos"));
  svg.append(path(curves.cdf.map((p) => [p[0], p[2]]), "neg"));
  // The KS statistic: the largest gap, at its threshold.
  const at = curves.cdf.reduce((best, p) => (Math.abs(p[0] - curves.ks_at) < Math.abs(best[0] - curves.ks_at) ? p : best));
  svg.append(el("svg:line", { class: "ks", x1: sx(at[0]), x2: sx(at[0]), y1: sy(at[1]), y2: sy(at[2]) }));
  svg.append(el("svg:text", { x: sx(0.5), y: sy(0.1) }, "KS " + num(curves.ks, 4) + " at " + num(curves.ks_at, 3)));
  svg.append(el("svg:text", { x: sx(0.05), y: sy(0.95), class: "pos-label" }, "defaults (positives)"));
  svg.append(el("svg:text", { x: sx(0.05), y: sy(0.87), class: "neg-label" }, "non-defaults"));
  return svg;
}

// ---- one job --------------------------------------------------------------

// Each phase's duration: from the attempt's announcement or the previous
// phase's close to this phase's close, by the coordinator's log clock.
function phaseRows(a) {
  let from = a.opened_unix_ms;
  const longest = Math.max(1, ...a.phases.map((p, i) =>
    p.closed_unix_ms ? p.closed_unix_ms - (i ? a.phases[i - 1].closed_unix_ms || a.opened_unix_ms : a.opened_unix_ms) : 0));
  return a.phases.map((p) => {
    let took = "not closed";
    let bar = null;
    if (p.closed_unix_ms) {
      const ms = Math.max(0, p.closed_unix_ms - from);
      took = seconds(ms);
      bar = el("span", { class: "bar" });
      // Through the CSSOM: the page's CSP refuses style attributes.
      bar.style.width = Math.max(2, Math.round((120 * ms) / longest)) + "px";
      from = p.closed_unix_ms;
    }
    return el("tr", { class: "phase" },
      el("td", {}, p.phase),
      el("td", {}, bar, took),
      el("td", {}, p.cohort.join(", ")),
      el("td", { class: "missing" }, p.missing.join(", ")));
  });
}

function outcome(a) {
  switch (a.outcome) {
    case "completed": return el("span", { class: "ok" }, "completed: " + a.contributors.length + " contributors" + (a.summary ? "; " + a.summary : ""));
    case "aborted": return el("span", { class: "bad" }, "aborted at " + a.phase + ": " + a.reason);
    case "interrupted": return el("span", { class: "bad" }, "interrupted by a coordinator restart");
    default: return el("span", { class: "muted" }, "open");
  }
}

function timeline(t) {
  const rows = [];
  for (const e of t.events) {
    if (e.event === "attempt") {
      const total = e.ended_unix_ms ? " in " + seconds(e.ended_unix_ms - e.opened_unix_ms) : "";
      rows.push(el("tr", { class: "attempt" },
        el("th", { colspan: 4 }, "round " + e.round + " attempt " + e.attempt + ": " + e.task + " (" + e.dimension + " values)" + total + " — ", outcome(e))));
      rows.push(...phaseRows(e));
    } else if (e.event === "leave") {
      rows.push(el("tr", { class: "leave" }, el("td", { colspan: 4, class: "bad" }, "record " + e.record + ": " + e.participant + " left: " + e.reason)));
    } else if (e.event === "coordinator-started") {
      rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted" },
        "record " + e.record + ": coordinator " + (e.restart ? "restarted (" + e.replayed_records + " records replayed)" : "started"))));
    } else if (e.event === "job-ended") {
      rows.push(el("tr", {}, el("td", { colspan: 4, class: e.ok ? "ok" : "bad" }, "record " + e.record + ": job ended " + (e.ok ? "ok" : "failed: " + e.reason))));
    } else if (e.event === "note") {
      rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "record " + e.record + ": " + e.text)));
    }
  }
  return el("table", { id: "timeline" },
    el("thead", {}, el("tr", {}, ...["phase", "took", "cohort", "missing (dropped)"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function modelSection(t) {
  const ended = t.events.find((e) => e.event === "job-ended" && e.model);
  const evaluated = [...t.events].reverse().find((e) => e.event === "attempt" && e.curves);
  if (!ended && !evaluated) return [];
  const out = [el("h2", {}, "Model")];
  const m = ended && ended.model;
  if (m) {
    const x = m.metrics || {};
    out.push(table(["features", "optimization rounds", "converged", "rows evaluated", "AUC", "KS", "log-loss", "default rate"],
      [[m.features, m.rounds, m.converged ? "yes" : "no", num(x.n, 0), num(x.auc, 4), num(x.ks, 4), num(x.logloss, 4), num(x.default_rate, 4)]],
      { id: "metrics" }));
  }
  if (evaluated) {
    out.push(el("p", { class: "muted" }, "Curves from the evaluation round's pooled score histograms (round " + evaluated.round + "), as published in the log."));
    out.push(el("div", { class: "cards" }, rocChart(evaluated.curves, m && m.metrics ? m.metrics.auc : null), ksChart(evaluated.curves)));
  }
  return out;
}

function departures(report) {
  if (!report.departures.length) return [];
  return [el("h2", {}, "Departures and refusals"),
    table(["record", "member", "reason code"], report.departures.map((d) => [d.record, d.participant, d.reason]), { id: "departures" })];
}

function summary(job, log) {
  const cards = [
    el("div", { class: "card" }, "state ", state(job.state), job.failure ? el("div", { class: "bad" }, job.failure) : null),
    el("div", { class: "card" }, "rounds completed: " + job.rounds_completed),
  ];
  if (log) {
    const verdict = log.audit.verified && log.audit.job_end.state === "ended";
    cards.push(el("div", { class: "card", id: "audit" }, "audit verdict: ",
      el("span", { class: "verdict " + (log.audit.verified ? "ok" : "bad") }, log.verdict),
      el("div", { class: "muted" }, log.log_bytes + " bytes, " + log.audit.records + " records" + (verdict ? "" : "; verified once the job has ended"))));
    const p = log.audit.privacy;
    cards.push(el("div", { class: "card", id: "privacy" }, p
      ? "privacy: ε spent " + num(p.epsilon_spent, 4) + " of " + p.epsilon + " (δ = " + p.delta + ", " + p.rounds + " noisy rounds)"
      : "privacy: no differential privacy (exact sums)"));
  }
  return el("div", { class: "cards" }, ...cards);
}

async function showJob(id) {
  const page = await getJson("/api/jobs/" + encodeURIComponent(id));
  document.title = "fedcredit: " + page.job.id;
  const parts = [el("h1", {}, "Job " + page.job.id + " (" + page.job.kind + ")"), summary(page.job, page.log)];
  if (!page.log) {
    parts.push(el("p", { class: "muted" }, "No round log yet: the job has not started."));
  } else if (page.log.timeline.Err !== undefined) {
    parts.push(el("p", { class: "bad" }, "The round log cannot be read as a timeline: " + page.log.timeline.Err));
  } else {
    const t = page.log.timeline.Ok;
    parts.push(el("p", { class: "muted" }, "Members: " + t.job.members.join(", ") + "; threshold " + t.job.threshold + ", minimum cohort " + t.job.min_cohort + "."));
    parts.push(...modelSection(t));
    parts.push(...departures(page.log.audit));
    parts.push(el("h2", {}, "Round timeline"), timeline(t));
  }
  if (page.log) {
    parts.push(el("h2", {}, "Audit report"), el("pre", { id: "audit-text" }, page.log.audit_text));
  }
  main.replaceChildren(...parts);
  return page.job.state;
}

// ---- routing and refresh --------------------------------------------------

const DONE = ["finished", "failed", "aborted"];

async function render() {
  const m = location.pathname.match(/^\/jobs\/([^/]+)$/);
  try {
    if (m) {
      const s = await showJob(decodeURIComponent(m[1]));
      if (!DONE.includes(s)) setTimeout(render, 3000);
    } else {
      await showList();
      setTimeout(render, 5000);
    }
    document.body.dataset.rendered = "yes";
  } catch (e) {
    main.replaceChildren(el("p", { class: "bad", id: "error" }, String(e.message || e)));
    document.body.dataset.rendered = "error";
  }
}

render();
