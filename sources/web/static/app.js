// The dashboard: reads the JSON API with the session cookie, acts on it with the
// session's CSRF token, and follows the log over server-sent events. No libraries.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;

async function api(method, path, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch("/api/v1" + path, options);
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.error ? data.error.message : response.statusText);
  }
  return data;
}

function notice(text, failed) {
  const element = document.getElementById("notice");
  element.textContent = text;
  element.className = failed ? "error" : "";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(parent, label, id, action) {
  const b = document.createElement("button");
  b.textContent = label;
  b.id = id;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } catch (error) {
      notice(error.message, true);
    } finally {
      b.disabled = false;
      refresh();
    }
  });
  parent.appendChild(b);
}

function duration(seconds) {
  if (seconds === null) return "-";
  const s = Math.floor(seconds);
  const parts = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  let left = s, out = "";
  for (const [size, unit] of parts) {
    if (left >= size || (unit === "s" && out === "")) {
      out += Math.floor(left / size) + unit + " ";
      left %= size;
    }
  }
  return out.trim();
}

async function showStatus() {
  const status = await api("GET", "/status");
  document.getElementById("state").textContent = status.state;
  document.getElementById("uptime").textContent = duration(status.uptime);
  document.getElementById("version").textContent = status.version;
}

async function showSources() {
  const tbody = document.querySelector("#sources tbody");
  let data;
  try {
    data = await api("GET", "/sources");
  } catch (error) {
    tbody.textContent = error.message;
    return;
  }
  tbody.textContent = "";
  for (const source of data.sources) {
    const row = document.createElement("tr");
    row.id = "source-" + source.name;
    cell(row, source.name);
    cell(row, source.type || "");
    cell(row, source.state, "state state-" + source.state.replace(" ", "-"));
    const actions = cell(row, "");
    for (const action of ["connect", "disconnect", "reload"]) {
      button(actions, action, action + "-" + source.name, async () => {
        const result = await api("POST", "/sources/" + encodeURIComponent(source.name) + "/" + action);
        notice(action + " " + source.name + ": " + (result.state || result.accepted));
      });
    }
    tbody.appendChild(row);
  }
}

async function showPlugins() {
  const tbody = document.querySelector("#plugins tbody");
  let data;
  try {
    data = await api("GET", "/plugins");
  } catch (error) {
    tbody.textContent = error.message;
    return;
  }
  tbody.textContent = "";
  for (const plugin of data.loaded) {
    const row = document.createElement("tr");
    row.id = "plugin-" + plugin.name;
    cell(row, plugin.name);
    cell(row, String(plugin.reloads), "reloads");
    const actions = cell(row, "");
    for (const action of ["reload", "unload"]) {
      button(actions, action, action + "-" + plugin.name, async () => {
        await api("POST", "/plugins/" + encodeURIComponent(plugin.name) + "/" + action);
        notice(action + " " + plugin.name + ": done");
      });
    }
    tbody.appendChild(row);
  }
  for (const [name, why] of Object.entries(data.failed)) {
    const row = document.createElement("tr");
    cell(row, name);
    cell(row, "failed: " + why, "error");
    cell(row, "");
    tbody.appendChild(row);
  }
}

async function showCounters() {
  const response = await fetch("/metrics", { credentials: "same-origin" });
  if (!response.ok) return;
  const text = await response.text();
  const wanted = /^botcore_(events_total|replies_sent_total|processor_errors_total|dispatcher_\w+|queue_depth)/;
  const lines = text.split("\n").filter((line) => wanted.test(line));
  // Mean time per processor, from the histogram's _sum and _count.
  const sums = {}, counts = {};
  const sample = /^botcore_processor_seconds_(sum|count)\{plugin="([^"]*)",processor="([^"]*)"\} (\S+)$/;
  for (const line of text.split("\n")) {
    const found = sample.exec(line);
    if (!found) continue;
    const key = found[2] + "." + found[3];
    (found[1] === "sum" ? sums : counts)[key] = parseFloat(found[4]);
  }
  const latencies = Object.keys(counts)
    .filter((key) => counts[key] > 0)
    .sort((a, b) => sums[b] / counts[b] - sums[a] / counts[a])
    .slice(0, 10)
    .map((key) => `latency ${key}: ${(1000 * sums[key] / counts[key]).toFixed(3)} ms mean over ${counts[key]}`);
  document.getElementById("counters").textContent = lines.concat(latencies).join("\n");
}

async function showEvents() {
  const tbody = document.querySelector("#events tbody");
  let data;
  try {
    data = await api("GET", "/events/recent");
  } catch (error) {
    tbody.textContent = error.message;
    return;
  }
  tbody.textContent = "";
  for (const event of data.events.slice(-20).reverse()) {
    const row = document.createElement("tr");
    cell(row, event.time.replace("T", " ").slice(0, 19));
    cell(row, event.source);
    cell(row, event.type, "event-type");
    cell(row, event.channel || "");
    cell(row, event.sender || "");
    tbody.appendChild(row);
  }
}

let held = null;

async function showPermissions() {
  // Hide what the account may not do (the server refuses it all the same).
  const data = await api("GET", "/me");
  held = data.permissions;
  document.getElementById("sources-section").hidden = !held.sources;
  document.getElementById("plugins-section").hidden = !held.plugins;
  document.getElementById("admin-sections").hidden = !held.admin;
}

async function refresh() {
  try {
    if (held === null) await showPermissions();
    await showStatus();
  } catch (error) {
    notice(error.message, true);
  }
  const shown = [showCounters()];
  if (held && held.sources) shown.push(showSources());
  if (held && held.plugins) shown.push(showPlugins());
  if (held && held.admin) shown.push(showEvents());
  await Promise.all(shown);
}

function followLog() {
  const log = document.getElementById("log");
  const stream = new EventSource("/api/v1/log");
  stream.onmessage = (message) => {
    log.textContent += message.data + "\n";
    const lines = log.textContent.split("\n");
    if (lines.length > 300) log.textContent = lines.slice(-300).join("\n");
    log.scrollTop = log.scrollHeight;
  };
}

document.getElementById("plugin-load").addEventListener("click", async () => {
  const name = document.getElementById("plugin-name").value.trim();
  if (!name) return;
  try {
    await api("POST", "/plugins/" + encodeURIComponent(name) + "/load");
    notice("load " + name + ": done");
  } catch (error) {
    notice(error.message, true);
  }
  refresh();
});

refresh().then(() => {
  if (held && held.admin) followLog();
});
setInterval(refresh, 5000);
