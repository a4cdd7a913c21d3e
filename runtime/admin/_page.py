"""The admin endpoint's HTML page (``GET /``): the task tree, live, in one self-contained file.

Plain HTML, CSS and JS, no build step and nothing fetched from elsewhere (a Content Security
Policy in the page says so to the browser too), so it works offline and behind a firewall.
It polls ``tasks`` (relative to the page, so it works mounted under a prefix too) every
second, or every ``?interval=SECONDS``, one request at a time, and draws:

- a header: the pid, the runtime's counters (``runtime`` in the JSON), when the data was last
  refreshed, and a notice while polls fail (the process is gone, or the network is), which
  goes away at the next poll that answers;
- the tree, nested by ``parent``: one ``<details>`` per task, kept across polls by task id
  (the DOM is updated in place, not rebuilt), so what the user opened or closed stays so;
  a connection sits under the server task that started it because that is its parent;
- a stack panel: a task's ``stack`` button (or its name) fetches ``tasks/<id>/stack``; a 404
  says the task has ended;
- a filter box: rows whose name contains the text, with their ancestors.

Every string that comes from the process (names, details, code, files) goes into the page
with ``textContent``; the page never uses ``innerHTML``, so a task named ``<script>`` is text.
"""

from __future__ import annotations

import html

_TITLE = "__ADMIN_PAGE_TITLE__"

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';
 connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'">
<title>__ADMIN_PAGE_TITLE__</title>
<link rel="icon" href="data:,">
<style>
  :root {
    --fg: #1d2026; --muted: #68707d; --bg: #fff; --panel: #f5f6f8; --line: #dde0e5;
    --accent: #2859c5; --sel: #e3ecff; --bad-bg: #fde8e8; --bad-fg: #a11;
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --fg: #e3e5e9; --muted: #98a0ad; --bg: #16181c; --panel: #1f2228; --line: #343842;
      --accent: #7aa2ff; --sel: #263452; --bad-bg: #4a1c1c; --bad-fg: #ffb4b4;
    }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, sans-serif;
         color: var(--fg); background: var(--bg); }
  header { padding: .6em 1em; border-bottom: 1px solid var(--line); background: var(--panel); }
  h1 { font-size: 1.15em; margin: 0 .8em 0 0; display: inline-block; }
  .stats { display: inline-flex; flex-wrap: wrap; gap: .3em 1em; vertical-align: middle; }
  .stat b { font-weight: 600; color: var(--muted); margin-right: .3em; }
  .stat.draining { color: var(--bad-fg); font-weight: 600; }
  #updated { color: var(--muted); margin-left: 1em; }
  #notice { margin: .5em 0 0; padding: .4em .7em; border-radius: 4px;
            background: var(--bad-bg); color: var(--bad-fg); font-weight: 600; }
  #notice[hidden] { display: none; }
  .stale #tree { opacity: .55; }
  .toolbar { display: flex; gap: 1em; align-items: center; padding: .5em 1em; }
  #filter { width: 18em; padding: .25em .4em; }
  #count { color: var(--muted); }
  main { display: flex; gap: 1em; padding: 0 1em 1em; align-items: flex-start; }
  #tree { flex: 3; min-width: 0; font-size: 13px; }
  #stack { flex: 2; min-width: 0; position: sticky; top: .5em; max-height: calc(100vh - 1em);
           overflow: auto; border: 1px solid var(--line); border-radius: 4px;
           background: var(--panel); padding: .5em .8em; }
  .kids { margin-left: 1.2em; border-left: 1px dotted var(--line); padding-left: .3em; }
  details.leaf > .kids { display: none; }
  summary { cursor: default; padding: 1px 2px; border-radius: 3px; white-space: nowrap;
            overflow: hidden; text-overflow: ellipsis; }
  summary:hover { background: var(--panel); }
  details.leaf > summary { list-style: none; padding-left: 1.05em; }
  details.leaf > summary::-webkit-details-marker { display: none; }
  details.selected > summary { background: var(--sel); }
  .name { font-weight: 600; cursor: pointer; }
  .name:hover { text-decoration: underline; }
  .badge { display: inline-block; font-size: 10.5px; line-height: 1.5; padding: 0 .45em;
           margin: 0 .4em; border-radius: 8px; background: var(--line); color: var(--fg);
           vertical-align: 1px; }
  .badge.k-root { background: #333a48; color: #fff; }
  .badge.k-system { background: #7b5aa6; color: #fff; }
  .badge.k-task { background: #2c7a4b; color: #fff; }
  .badge.k-joinset { background: #1f7a80; color: #fff; }
  .badge.k-connection { background: #b5651d; color: #fff; }
  .age, .wait, .detail { color: var(--muted); margin-left: .6em; }
  .wait::before { content: "in "; }
  .detail { font-style: italic; }
  .stack-btn { font-size: 11px; margin-left: .6em; padding: 0 .5em; cursor: pointer; }
  .hidden { display: none; }
  #stack h2 { font-size: 1em; margin: .2em 0 .5em; }
  #stack-status { color: var(--muted); }
  #stack-status.error { color: var(--bad-fg); font-weight: 600; }
  .frame { margin: 0 0 .55em; }
  .frame .where { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
  .frame .fn { font-weight: 600; }
  .frame pre { margin: .1em 0 0 1em; font-size: 12px; white-space: pre-wrap; }
</style>
</head>
<body>
<header>
  <h1>__ADMIN_PAGE_TITLE__</h1>
  <span class="stats" id="stats"
    title="the runtime's counts of the tasks started with runtime.spawn">
    <span class="stat"><b>pid</b><span id="pid">-</span></span>
    <span class="stat" data-key="alive"><b>alive</b><span>-</span></span>
    <span class="stat" data-key="spawned"><b>spawned</b><span>-</span></span>
    <span class="stat" data-key="completed"><b>completed</b><span>-</span></span>
    <span class="stat" data-key="failed"><b>failed</b><span>-</span></span>
    <span class="stat" data-key="cancelled"><b>cancelled</b><span>-</span></span>
    <span class="stat" data-key="shutting_down"><b>shutting down</b><span>-</span></span>
  </span>
  <span id="updated">waiting for the first poll...</span>
  <p id="notice" role="alert" hidden></p>
</header>
<div class="toolbar">
  <label>filter <input id="filter" type="search" autocomplete="off"
    placeholder="task name contains..."></label>
  <span id="count"></span>
</div>
<main>
  <div id="tree" aria-label="task tree"></div>
  <aside id="stack" aria-live="polite">
    <h2 id="stack-title">stack</h2>
    <p id="stack-status">Click a task's name or its "stack" button to see where it waits.</p>
    <button id="stack-refresh" type="button" hidden>refresh</button>
    <div id="frames"></div>
  </aside>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const INTERVAL_MS = Math.max(200, 1000 * (parseFloat(params.get("interval")) || 1));
const TIMEOUT_MS = Math.max(5000, 3 * INTERVAL_MS);
const KINDS = ["root", "system", "task", "joinset", "connection", "trio"];
const $ = (id) => document.getElementById(id);
const nodes = new Map();      // task id -> {details, summary, kids, fields...}
const userOpen = new Map();   // task id -> open, as the user left it (no filter)
let filterOpen = new Map();   // the same while a filter is typed; reset when it changes
let lastTasks = [];
let selected = null;          // the id whose stack the panel shows
let selectedEnded = false;    // and whether it has left the tree since
let polls = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function formatAge(age) {
  if (age === null || age === undefined || !isFinite(age)) return "-";
  if (age < 10) return age.toFixed(1) + "s";
  if (age < 60) return Math.floor(age) + "s";
  const pad = (n) => String(Math.floor(n)).padStart(2, "0");
  if (age < 3600) return Math.floor(age / 60) + "m" + pad(age % 60) + "s";
  if (age < 86400) return Math.floor(age / 3600) + "h" + pad((age % 3600) / 60) + "m";
  return Math.floor(age / 86400) + "d" + pad((age % 86400) / 3600) + "h";
}

function filterText() { return $("filter").value.trim().toLowerCase(); }

function makeNode(id) {
  const details = el("details", "node");
  details.dataset.id = String(id);
  const summary = el("summary", "row");
  const n = {
    details, summary,
    name: el("span", "name"), badge: el("span", "badge"), age: el("span", "age"),
    wait: el("span", "wait"), detail: el("span", "detail"),
    button: el("button", "stack-btn", "stack"), kids: el("div", "kids"),
  };
  n.button.type = "button";
  n.button.title = "show this task's stack";
  summary.append(n.name, n.badge, n.age, n.wait, n.detail, n.button);
  details.append(summary, n.kids);
  summary.addEventListener("click", (ev) => {
    if (ev.target === n.name || ev.target === n.button) {
      ev.preventDefault();  // a stack request, not a toggle
      showStack(id);
      return;
    }
    // The default action toggles it next: remember the state the user asked for.
    (filterText() ? filterOpen : userOpen).set(id, !details.open);
  });
  return n;
}

function fill(n, t) {
  n.name.textContent = t.name;
  n.name.title = t.name;
  const kind = KINDS.includes(t.kind) ? t.kind : "other";
  n.badge.textContent = t.kind;
  n.badge.className = "badge k-" + kind;
  n.age.textContent = formatAge(t.age);
  n.age.title = "age";
  n.wait.textContent = t.waiting_in === null ? "" : t.waiting_in;
  n.wait.classList.toggle("hidden", t.waiting_in === null);
  n.detail.textContent = t.detail === null ? "" : t.detail;
  n.detail.classList.toggle("hidden", t.detail === null);
  n.details.dataset.kind = kind;
}

// Put child at position i of parent, moving it only if it is not there already (moving a
// node the user is clicking would swallow the click).
function place(parent, child, i) {
  if (parent.children[i] !== child) parent.insertBefore(child, parent.children[i] || null);
}

function render(tasks) {
  lastTasks = tasks;
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const children = new Map();
  const roots = [];
  for (const t of tasks) {
    if (t.parent !== null && byId.has(t.parent)) {
      if (!children.has(t.parent)) children.set(t.parent, []);
      children.get(t.parent).push(t.id);
    } else {
      roots.push(t.id);
    }
  }
  for (const [id, n] of nodes) {
    if (!byId.has(id)) { n.details.remove(); nodes.delete(id); }
  }
  const visible = visibleIds(tasks, byId);
  const filtering = filterText() !== "";
  const draw = (container, ids) => {
    ids.forEach((id, i) => {
      const t = byId.get(id);
      let n = nodes.get(id);
      if (!n) { n = makeNode(id); nodes.set(id, n); }
      fill(n, t);
      const kids = children.get(id) || [];
      n.details.classList.toggle("leaf", kids.length === 0);
      n.details.classList.toggle("hidden", !visible.has(id));
      n.details.classList.toggle("selected", id === selected);
      const open = filtering
        ? (filterOpen.has(id) ? filterOpen.get(id) : kids.some((k) => visible.has(k)))
        : (userOpen.has(id) ? userOpen.get(id) : true);
      if (n.details.open !== open) n.details.open = open;
      place(container, n.details, i);
      draw(n.kids, kids);
      while (n.kids.children.length > kids.length) n.kids.lastChild.remove();
    });
  };
  const tree = $("tree");
  draw(tree, roots);
  while (tree.children.length > roots.length) tree.lastChild.remove();
  const shown = tasks.filter((t) => visible.has(t.id)).length;
  $("count").textContent = filtering
    ? shown + " of " + tasks.length + " tasks in the tree" : tasks.length + " tasks in the tree";
  if (selected !== null && !byId.has(selected) && !selectedEnded) {
    $("stack-title").textContent += " (ended)";  // keep the frames it showed
    selectedEnded = true;
  }
}

// The ids to show: all of them, or the matches of the filter and their ancestors.
function visibleIds(tasks, byId) {
  const q = filterText();
  if (!q) return new Set(byId.keys());
  const keep = new Set();
  for (const t of tasks) {
    if (!String(t.name).toLowerCase().includes(q)) continue;
    for (let id = t.id; id !== null && byId.has(id) && !keep.has(id); id = byId.get(id).parent) {
      keep.add(id);
    }
  }
  return keep;
}

function showHeader(data) {
  $("pid").textContent = String(data.pid);
  const rt = data.runtime || {};
  for (const stat of document.querySelectorAll(".stat[data-key]")) {
    const value = rt[stat.dataset.key];
    const out = stat.lastElementChild;
    if (stat.dataset.key === "shutting_down") {
      out.textContent = value ? "yes, draining" : "no";
      stat.classList.toggle("draining", Boolean(value));
    } else {
      out.textContent = value === undefined ? "-" : String(value);
    }
  }
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function showFailure(what) {
  const notice = $("notice");
  notice.textContent = "Poll of /tasks failed at " + new Date().toLocaleTimeString() + ": " +
    what + ". The process may have exited; the tree below is its last known state. " +
    "Retrying every " + INTERVAL_MS / 1000 + " s.";
  notice.hidden = false;
  document.body.classList.add("stale");
}

async function fetchJson(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const response = await fetch(url, { cache: "no-store", signal: ctl.signal });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return { status: response.status, ok: response.ok, body };
  } finally {
    clearTimeout(timer);
  }
}

async function poll() {
  try {
    const r = await fetchJson("tasks");
    if (!r.ok || !r.body || !Array.isArray(r.body.tasks)) {
      throw new Error(r.ok ? "not the JSON of /tasks" : "HTTP " + r.status);
    }
    showHeader(r.body);
    render(r.body.tasks);
    $("notice").hidden = true;
    $("notice").textContent = "";
    document.body.classList.remove("stale");
  } catch (e) {
    showFailure(e.name === "AbortError" ? "no answer in " + TIMEOUT_MS / 1000 + " s" : e.message);
  } finally {
    polls += 1;
    document.body.dataset.polls = String(polls);
    setTimeout(poll, INTERVAL_MS);
  }
}

async function showStack(id) {
  selected = id;
  selectedEnded = false;
  for (const [other, n] of nodes) n.details.classList.toggle("selected", other === id);
  const t = lastTasks.find((x) => x.id === id);
  $("stack-title").textContent = "stack of " + (t ? t.name : "task") + " (#" + id + ")";
  const status = $("stack-status");
  status.className = "";
  status.textContent = "loading...";
  $("stack-refresh").hidden = false;
  $("stack-refresh").onclick = () => showStack(id);
  const frames = $("frames");
  let r;
  try {
    r = await fetchJson("tasks/" + encodeURIComponent(id) + "/stack");
  } catch (e) {
    r = { status: 0, ok: false, body: { error: e.message } };
  }
  if (selected !== id) return;  // another task was clicked meanwhile
  frames.replaceChildren();
  if (r.status === 404) {
    status.className = "error";
    status.textContent = "Task #" + id + " has ended (no live task with this id).";
    return;
  }
  if (!r.ok || !r.body || !Array.isArray(r.body.frames)) {
    status.className = "error";
    status.textContent = "Could not fetch the stack: " +
      (r.body && r.body.error ? r.body.error : "HTTP " + r.status);
    return;
  }
  status.textContent = r.body.frames.length + " frames, outermost first, at " +
    new Date().toLocaleTimeString();
  for (const f of r.body.frames) {
    const frame = el("div", "frame");
    const where = el("div", "where");
    where.append(el("span", "file", f.file + ":" + f.line), " ", el("span", "fn", f.function));
    frame.append(where);
    if (f.code) frame.append(el("pre", "code", f.code));
    frames.append(frame);
  }
}

$("filter").addEventListener("input", () => {
  filterOpen = new Map();
  render(lastTasks);
});
poll();
</script>
</body>
</html>
"""


def render_page(title: str = "trio-runtime admin") -> str:
    """The page with ``title`` in its ``<title>`` and heading (HTML-escaped).

    Args:
        title: Plain text, such as the app's name; ``<`` and ``&`` show as themselves.

    Returns:
        The complete HTML document, ready to serve as ``text/html; charset=utf-8``.
    """
    return PAGE.replace(_TITLE, html.escape(title))
