// The microforum console's page: polls /api/state and places what it says. The picture and the
// charts arrive as SVG made (and escaped) by the server; every other text is set as text.
"use strict";

const filters = { group: "", status: "" };
const cards = new Map(); // target group name -> its card's elements
let pollMs = 1000;
let filtersFilled = false;

function $(selector, root = document) { return root.querySelector(selector); }

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function setLive(ok, text) {
  const live = $("#live");
  live.className = "live " + (ok ? "ok" : "down");
  live.textContent = text;
}

function banner(text) {
  const node = $("#banner");
  node.hidden = !text;
  node.textContent = text || "";
}

async function poll() {
  const query = new URLSearchParams(filters);
  try {
    const response = await fetch("/api/state?" + query, { cache: "no-store" });
    if (response.status === 401) {
      setLive(false, "signed out");
      banner("This page's token is no longer valid: open the console URL that `microforum up` printed.");
      return; // no point in asking again
    }
    const state = await response.json();
    render(state);
    banner("");
    setLive(true, "live · updated " + new Date().toLocaleTimeString());
  } catch (error) {
    setLive(false, "the stack does not answer (stopped?)");
  }
  setTimeout(poll, pollMs);
}

function render(state) {
  pollMs = Math.max(250, (state.poll_interval || 1) * 1000);
  $("#stack-name").textContent = state.stack;
  $("#stack-url").textContent = state.url;
  document.title = state.stack + " · microforum console";
  $("#picture").innerHTML = state.picture;
  fillFilters(state.filters);
  for (const group of state.groups) renderGroup(group);
  renderLogs(state.logs);
}

function fillFilters(choices) {
  if (filtersFilled) return;
  filtersFilled = true;
  for (const [id, values, key] of [["#filter-group", choices.groups, "group"],
                                   ["#filter-status", choices.statuses, "status"]]) {
    const select = $(id);
    for (const value of values) select.append(new Option(value === "elb" ? "by the load balancer" : value, value));
    select.addEventListener("change", () => { filters[key] = select.value; });
  }
}

function card(group) {
  if (cards.has(group.name)) return cards.get(group.name);
  const root = $("#group-template").content.firstElementChild.cloneNode(true);
  root.dataset.group = group.name;
  $(".name", root).textContent = "Target group " + group.name;
  const button = $("button", root);
  button.textContent = "Restart " + group.service;
  button.addEventListener("click", () => restart(group.service, button));
  $("#groups").append(root);
  const parts = { root, button, body: $(".targets tbody", root), charts: $(".charts", root),
                  summary: $(".summary", root), progress: $(".progress", root),
                  bar: $(".bar", root), text: $(".restart-text", root) };
  cards.set(group.name, parts);
  return parts;
}

function renderGroup(group) {
  const parts = card(group);
  const healthy = group.targets.filter((t) => t.state === "healthy").length;
  parts.summary.textContent = `${healthy} of ${group.desired} desired targets healthy · `
    + `requests since start: ${group.metrics.RequestCount || 0}`;
  parts.body.replaceChildren(...group.targets.map(targetRow));
  if (!group.targets.length) {
    const row = el("tr");
    const cell = el("td", "no registered targets", "empty");
    cell.colSpan = 6;
    row.append(cell);
    parts.body.append(row);
  }
  parts.charts.innerHTML = group.charts.join("");
  renderRestart(parts, group.restart);
}

function targetRow(target) {
  const row = el("tr");
  row.dataset.target = target.id;
  row.dataset.state = target.state;
  const state = el("td");
  state.append(el("span", target.state, "state " + target.state));
  row.append(el("td", target.id), el("td", target.port), state, el("td", target.reason || "–"),
             el("td", target.last_failure || target.description || "–"), el("td", target.in_flight));
  return row;
}

function renderRestart(parts, restart) {
  const running = restart && restart.state === "running";
  parts.button.disabled = Boolean(running);
  parts.progress.hidden = !restart || restart.state === "failed";
  parts.text.className = "restart-text " + (restart ? restart.state : "");
  parts.text.textContent = restart ? restartText(restart) : "";
  if (restart) parts.bar.style.width = Math.round(restart.fraction * 100) + "%";
  parts.root.dataset.restart = restart ? restart.state : "";
}

function restartText(restart) {
  if (restart.state === "done") return "restart finished: " + restart.text;
  if (restart.state === "failed") return "restart failed: " + restart.text;
  return "restarting: " + restart.text;
}

async function restart(service, button) {
  button.disabled = true;
  const response = await fetch("/api/restart?service=" + encodeURIComponent(service), {
    method: "POST", headers: { "X-Microforum-Console": "1" },
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    banner(`restart ${service}: ${body.error || "HTTP " + response.status}`);
    button.disabled = false;
  }
}

function renderLogs(lines) {
  const body = $("#logs tbody");
  if (!lines.length) {
    const row = el("tr");
    const cell = el("td", "no access-log lines match", "empty");
    cell.colSpan = 7;
    row.append(cell);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...lines.map((line) => {
    const row = el("tr");
    const status = el("td");
    status.append(el("span", line.status, "code c" + String(line.status)[0]));
    if (line.target_status === "-") status.append(el("span", " by the LB", "elb"));
    const time = el("td", line.time.slice(11, 23));
    time.title = line.time;
    const request = el("td", line.short, "request");
    request.title = line.request;
    row.append(time, status,
               el("td", line.target === "-" ? "–" : line.target), el("td", line.group || "–"),
               request,
               el("td", line.target_time === "-1" ? "–" : line.target_time + " s"),
               el("td", line.trace_id));
    return row;
  }));
}

poll();
