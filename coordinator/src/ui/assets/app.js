// The reef dashboard: one page per view, each drawn from the latest data
// the server pushed over /events. Every action is a POST to /action with
// the session's form token; the server makes it an API call as the user.
"use strict";

const data = { nodes: null, apps: null, jobs: null, certs: null, audit: null, traffic: null };
let session = null;
let logSource = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An externally tagged Rust enum: "Running" or {"Exited": {"code": 0}}.
function stateOf(value) {
  if (typeof value === "string") return { name: value.toLowerCase(), detail: "" };
  const [name, inner] = Object.entries(value || {})[0] || ["?", {}];
  const detail = inner && typeof inner === "object" ? Object.values(inner).join(" ") : String(inner);
  return { name: name.toLowerCase(), detail };
}

function stateCell(value) {
  const s = stateOf(value);
  return el("td", {}, el("span", { class: "state " + s.name }, s.name), s.detail ? " " + s.detail : "");
}

function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return (Math.round(bytes * 10) / 10) + " " + units[i];
}

function cores(millis) { return (millis / 1000).toFixed(millis % 1000 ? 1 : 0); }

function may(verb) { return session && session.may[verb] === true; }

function status(text, ok) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = ok ? "ok" : "error";
}

async function act(body) {
  const response = await fetch("/action", {
    method: "POST",
    headers: { "content-type": "application/json", "x-reef-csrf": session.csrf },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.ok) status(body.verb + " " + (body.app || body.job) + ": done", true);
  else status(body.verb + " refused: " + (answer.error || response.status), false);
}

function nodeNames() {
  const names = {};
  for (const n of data.nodes || []) names[n.record.id] = n.record.name;
  return names;
}

function instancesOn(nodeId) {
  const out = [];
  for (const app of (data.apps && data.apps.apps) || []) {
    for (const i of app.instances) if (i.node === nodeId) out.push({ app: app.record.name, gpus: i.gpus.length });
  }
  return out;
}

// The latest heartbeat this coordinator heard from a node, else what the
// leader last wrote of it.
function lastHeard(n) {
  const heard = data.traffic && data.traffic.heard[n.record.id];
  return Math.max(heard || 0, n.last_seen_ms || 0);
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// The last hour of an app's requests (bars, per minute) and their mean
// latency (the line), from the agents' proxies.
function chart(app) {
  const minutes = (data.traffic && data.traffic.apps[app]) || [];
  const total = minutes.reduce((n, m) => n + m.requests, 0);
  const errors = minutes.reduce((n, m) => n + m.errors, 0);
  const micros = minutes.reduce((n, m) => n + m.latency_micros, 0);
  const caption = el("div", { class: "traffic muted" }, total
    ? total + " requests, mean " + (micros / total / 1000).toFixed(1) + " ms, " + errors + " errors in the last hour"
    : "no requests in the last hour");
  if (!total) return caption;
  const w = 360, h = 60, step = w / minutes.length;
  const most = Math.max(...minutes.map((m) => m.requests));
  const means = minutes.map((m) => (m.requests ? m.latency_micros / m.requests : null));
  const slowest = Math.max(...means.filter((x) => x !== null), 1);
  const picture = svg("svg", { class: "chart", viewBox: "0 0 " + w + " " + h, width: w, height: h, role: "img" });
  picture.append(svg("title", {}));
  picture.firstChild.textContent = "requests per minute and mean latency, last hour";
  minutes.forEach((m, i) => {
    if (!m.requests) return;
    const bar = (m.requests / most) * (h - 4);
    picture.append(svg("rect", { x: i * step + 0.5, y: h - bar, width: Math.max(step - 1, 1), height: bar, class: m.errors ? "bar-errors" : "bar-ok" }));
  });
  const points = means.map((x, i) => (x === null ? null : (i * step + step / 2).toFixed(1) + "," + (h - 2 - (x / slowest) * (h - 6)).toFixed(1))).filter(Boolean);
  if (points.length > 1) picture.append(svg("polyline", { points: points.join(" "), class: "latency" }));
  return el("div", { class: "chart-box" }, picture, caption);
}

const pages = {
  nodes() {
    if (!data.nodes) return el("p", { class: "muted" }, "loading…");
    const rows = data.nodes.map((n) => {
      const r = n.record;
      const runs = instancesOn(r.id);
      const gpusUsed = runs.reduce((n, i) => n + i.gpus, 0);
      const gpus = r.gpus.length ? gpusUsed + " / " + r.gpus.length + " (" + r.gpus.map((g) => g.model).join(", ") + ")" : "none";
      return el("tr", { "data-node": r.name },
        el("td", {}, el("strong", {}, r.name), el("div", { class: "muted" }, r.id)),
        stateCell(n.paused ? "Paused" : n.state),
        el("td", {}, r.trust.toLowerCase()),
        el("td", {}, cores(n.allocated.cpu_millis) + " / " + cores(r.resources.cpu_millis) + " cores"),
        el("td", {}, size(n.allocated.memory_bytes) + " / " + size(r.resources.memory_bytes)),
        el("td", {}, gpus),
        el("td", {}, Object.entries(r.labels).map(([k, v]) => el("span", { class: "label" }, k + "=" + v))),
        el("td", {}, n.allocations + " jobs", runs.length ? el("div", { class: "muted" }, "apps: " + runs.map((i) => i.app).join(", ")) : null),
        el("td", { class: "heartbeat" }, ago(lastHeard(n))));
    });
    return el("section", { id: "nodes" }, el("h2", {}, "Nodes (" + rows.length + ")"),
      el("table", {}, el("tr", {}, ["node", "state", "trust", "cpu", "memory", "gpus", "labels", "runs", "last heartbeat"].map((h) => el("th", {}, h))), rows));
  },

  apps() {
    if (!data.apps) return el("p", { class: "muted" }, "loading…");
    const names = nodeNames();
    const cards = data.apps.apps.map((a) => {
      const r = a.record;
      const live = a.instances;
      const current = live.filter((i) => i.version === r.version);
      const healthy = current.filter((i) => stateOf(i.state).name === "healthy").length;
      const history = (data.apps.releases[r.name] || []).slice().sort((x, y) => y.version - x.version);
      const rollout = r.replicas ? Math.round((healthy / r.replicas) * 100) : 100;
      const actions = [];
      if (may("app.rollback")) {
        actions.push(el("button", { "data-action": "app.rollback", onclick: () => act({ verb: "app.rollback", app: r.name }) }, "Roll back"));
      }
      if (may("app.scale")) {
        const input = el("input", { type: "number", min: 0, max: 1000, value: r.replicas, "aria-label": "replicas" });
        actions.push(input, el("button", { "data-action": "app.scale", onclick: () => act({ verb: "app.scale", app: r.name, replicas: Number(input.value) }) }, "Scale"));
      }
      if (may("app.stop") && r.desired === "Running") {
        actions.push(el("button", { "data-action": "app.stop", onclick: () => act({ verb: "app.stop", app: r.name }) }, "Stop"));
      }
      if (may("app.start") && r.desired === "Stopped") {
        actions.push(el("button", { "data-action": "app.start", onclick: () => act({ verb: "app.start", app: r.name }) }, "Start"));
      }
      return el("div", { class: "card app", "data-app": r.name, "data-version": r.version },
        el("h3", {}, r.name, " ", el("span", { class: "muted" }, "release " + r.version + " · " + r.desired.toLowerCase() + " · " + healthy + "/" + r.replicas + " healthy")),
        el("div", { class: "rollout" }, "rollout ", el("span", { class: "bar bg" }, el("span", { class: "bar", "data-pct": rollout })), " " + rollout + "%"),
        r.rollout_failure ? el("p", { class: "state failed" }, r.rollout_failure) : null,
        actions.length ? el("div", { class: "actions" }, actions) : null,
        chart(r.name),
        el("table", {}, el("tr", {}, ["instance", "node", "release", "state", "restarts", "message"].map((h) => el("th", {}, h))),
          live.map((i) => el("tr", { class: "instance", "data-state": stateOf(i.state).name, "data-version": i.version },
            el("td", { class: "muted" }, i.id.slice(-12)), el("td", {}, names[i.node] || i.node), el("td", {}, i.version),
            stateCell(i.state), el("td", {}, i.restarts), el("td", { class: "muted" }, i.message || "")))),
        el("p", { class: "muted history" }, "releases: ", history.map((h) => "v" + h.version + (h.copied_from ? " (rollback to v" + h.copied_from + ")" : "") + " " + ago(h.created_at_ms)).join(" · ")));
    });
    return el("section", { id: "apps" }, el("h2", {}, "Apps (" + cards.length + ")"), cards.length ? cards : el("p", { class: "muted" }, "No apps yet: reef deploy DIR"));
  },

  jobs(id) {
    if (!data.jobs) return el("p", { class: "muted" }, "loading…");
    const names = nodeNames();
    const rows = data.jobs.map((j) => {
      const u = j.usage;
      return el("tr", { "data-job": j.id },
        el("td", {}, el("a", { href: "#jobs/" + j.id }, j.id.slice(-12)), el("div", { class: "muted" }, j.spec.command.join(" ").slice(0, 80))),
        stateCell(j.state),
        el("td", {}, j.node ? names[j.node] || j.node : ""),
        el("td", {}, j.spec.owner),
        el("td", {}, u ? (u.cpu_ms / 1000).toFixed(1) + "s cpu" + (u.peak_memory_bytes ? ", " + size(u.peak_memory_bytes) : "") : ""),
        el("td", {}, ago(j.submitted_at_ms)),
        el("td", {}, may("job.stop") && ["running", "assigned", "pending"].includes(stateOf(j.state).name)
          ? el("button", { "data-action": "job.stop", onclick: () => act({ verb: "job.stop", job: j.id }) }, "Stop") : ""));
    });
    const parts = [el("h2", {}, "Jobs (" + rows.length + ")"),
      el("table", {}, el("tr", {}, ["job", "state", "node", "owner", "usage", "submitted", ""].map((h) => el("th", {}, h))), rows)];
    if (id) {
      parts.push(el("h2", {}, "Output of " + id, " ", el("a", { href: "/logs/" + id + "?download=1", id: "download" }, "download")), logPane(id));
    }
    return el("section", { id: "jobs" }, parts);
  },

  certs() {
    if (!data.certs) return el("p", { class: "muted" }, "loading…");
    return el("section", { id: "certs" }, el("h2", {}, "Certificates (" + data.certs.length + ")"),
      el("table", {}, el("tr", {}, ["domains", "source", "expires", "nodes", "last error"].map((h) => el("th", {}, h))),
        data.certs.map((c) => el("tr", {}, el("td", {}, c.domains.join(" ")), el("td", {}, String(c.source).toLowerCase()),
          el("td", {}, c.not_after_ms ? new Date(c.not_after_ms).toISOString().slice(0, 10) : "none yet"), el("td", {}, c.nodes),
          el("td", { class: c.last_error ? "state failed" : "" }, c.last_error || "")))));
  },

  audit() {
    if (!data.audit) return el("p", { class: "muted" }, "loading…");
    const entries = data.audit.slice().reverse();
    return el("section", { id: "audit" }, el("h2", {}, "Audit log (newest " + entries.length + ")"),
      el("table", {}, el("tr", {}, ["when", "who", "verb", "target", "outcome"].map((h) => el("th", {}, h))),
        entries.map((e) => {
          const o = stateOf(e.outcome);
          return el("tr", { class: "entry", "data-verb": e.verb, "data-outcome": o.name },
            el("td", {}, new Date(e.at_ms).toISOString().replace("T", " ").slice(0, 19)),
            el("td", {}, e.caller + " (" + e.role + ")"), el("td", {}, e.verb), el("td", {}, e.target),
            el("td", {}, el("span", { class: "state " + o.name }, o.name), " " + o.detail));
        })));
  },
};

// A job's output, following what is written from the first line.
function logPane(id) {
  const pre = document.getElementById("log");
  if (pre && pre.dataset.job === id) return pre;
  if (logSource) logSource.close();
  const fresh = el("pre", { id: "log", "data-job": id });
  logSource = new EventSource("/logs/" + id);
  logSource.onmessage = (event) => {
    const line = JSON.parse(event.data);
    fresh.append(el("span", { class: line.stderr ? "err" : "" }, line.text + "\n"));
    fresh.scrollTop = fresh.scrollHeight;
  };
  return fresh;
}

function render() {
  const [page, id] = (location.hash.slice(1) || "nodes").split("/");
  const draw = pages[page] || pages.nodes;
  if (page !== "jobs" && logSource) { logSource.close(); logSource = null; }
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === page);
  const main = document.getElementById("page");
  // What someone is typing survives a redraw.
  const typing = document.activeElement && document.activeElement.closest && document.activeElement.closest(".app[data-app]");
  const kept = typing ? [typing.dataset.app, document.activeElement.value] : null;
  main.replaceChildren(draw(id));
  if (kept) {
    const input = main.querySelector('.app[data-app="' + CSS.escape(kept[0]) + '"] input');
    if (input) { input.value = kept[1]; input.focus(); }
  }
  for (const bar of main.querySelectorAll(".bar[data-pct]")) bar.style.width = bar.dataset.pct + "%";
}

async function start() {
  const response = await fetch("/session");
  if (!response.ok) { location.reload(); return; }
  session = await response.json();
  document.getElementById("who").textContent = session.user + " (" + session.role + ")";
  if (may("audit.list")) document.querySelector('a[data-page="audit"]').hidden = false;
  const events = new EventSource("/events");
  const live = document.getElementById("live");
  events.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  events.onerror = () => { live.textContent = "reconnecting…"; live.className = "live"; };
  for (const topic of Object.keys(data)) {
    events.addEventListener(topic, (event) => {
      const message = JSON.parse(event.data);
      if (message.error) status(topic + ": " + message.error, false);
      else data[topic] = message.data;
      render();
    });
  }
  window.addEventListener("hashchange", render);
  render();
}

start();
