// The status page: everything on it comes from the monitor's JSON API, every two seconds.
// Text from the monitor is only ever set with textContent, never parsed as HTML.
"use strict";

// params, token, SVG, url() and el() come from common.js.
let shownEvent = null;

function setText(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = value;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function duration(seconds) {
  const s = Math.floor(seconds), m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return d + " d " + (h % 24) + " h";
  if (h) return h + " h " + (m % 60) + " min";
  return m + " min " + (s % 60) + " s";
}

function refreshFrame() {
  const next = new Image();
  next.onload = () => { document.getElementById("frame").src = next.src; };
  next.src = url("/frame.jpg?t=" + Date.now());
}

function drawChart(history, zones) {
  const chart = document.getElementById("score-chart");
  const W = 600, H = 180, L = 34, R = 6, T = 8, B = 18;
  while (chart.firstChild) chart.removeChild(chart.firstChild);
  const points = history.points;
  const names = history.zones;
  const thresholds = names.map(name => (zones[name] ? zones[name].threshold : null)).filter(t => t !== null);
  const scores = points.flatMap(p => p.slice(1)).filter(s => s !== null);
  let low = Math.min(...thresholds.map(t => t - 0.05), ...scores, 0.85);
  low = Math.max(0, Math.floor(low * 20) / 20);
  const high = 1.0;
  const t1 = points.length ? points[points.length - 1][0] : 0;
  const t0 = Math.min(t1 - 10, points.length ? points[0][0] : t1);
  const x = t => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = s => T + (H - T - B) * (high - s) / (high - low);
  svg(chart, "line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#9ca3af"});
  svg(chart, "line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9ca3af"});
  svg(chart, "text", {x: 2, y: y(high) + 4, fill: "#6b7280", "font-size": 11}, high.toFixed(2));
  svg(chart, "text", {x: 2, y: y(low) + 4, fill: "#6b7280", "font-size": 11}, low.toFixed(2));
  svg(chart, "text", {x: L + 2, y: H - 4, fill: "#6b7280", "font-size": 11}, "-" + Math.round(t1 - t0) + " s");
  svg(chart, "text", {x: W - R - 22, y: H - 4, fill: "#6b7280", "font-size": 11}, "now");
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  names.forEach((name, index) => {
    const zone = zones[name];
    const colour = zone ? zone.colour : "#2563eb";
    if (zone) {
      svg(chart, "line", {x1: L, y1: y(zone.threshold), x2: W - R, y2: y(zone.threshold),
                          stroke: colour, "stroke-dasharray": "5 4", class: "threshold"});
    }
    const line = points.filter(p => p[index + 1] !== null);
    if (line.length) {
      svg(chart, "polyline", {
        class: "score-line", fill: "none", stroke: colour, "stroke-width": 2,
        points: line.map(p => x(p[0]).toFixed(1) + "," + y(p[index + 1]).toFixed(1)).join(" "),
      });
    }
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = colour;
    item.append(swatch, document.createTextNode(name + (zone ? " (threshold " + zone.threshold + ")" : "")));
    legend.appendChild(item);
  });
}

function drawZones(zones, arming) {
  const body = document.querySelector("#zones tbody");
  body.replaceChildren();
  for (const [name, zone] of Object.entries(zones)) {
    const row = el("tr", {"data-zone": name});
    const label = el("td");
    const swatch = el("span", {class: "swatch"});
    swatch.style.background = zone.colour;
    label.append(swatch, document.createTextNode(name));
    const score = zone.kind === "state" && zone.scores
      ? Object.entries(zone.scores).map(([state, s]) => state + " " + fmt(s, 3)).join(", ")
      : fmt(zone.score, 4);
    row.append(
      label,
      el("td", {}, zone.kind),
      el("td", {class: "zone-state"}, zone.state),
      el("td", {}, score),
      el("td", {}, String(zone.threshold)),
      el("td", {class: zone.output ? "on" : ""}, zone.output ? "on" : "off"),
      armCell(name, zone, arming),
    );
    body.appendChild(row);
  }
}

function eventLine(record) {
  const item = el("li");
  const name = record.snapshot ? record.snapshot.split("/").pop() : "";
  if (/^[\w.-]+\.jpg$/.test(name) && !name.startsWith(".")) {  // only names the monitor itself gives
    const href = url("/snapshots/" + encodeURIComponent(name));
    const link = el("a", {href: href});
    link.appendChild(el("img", {src: href, alt: "snapshot", loading: "lazy"}));
    item.appendChild(link);
  }
  const text = el("div");
  const what = record.type === "state"
    ? record.zone + ": " + record.state + (record.previous ? " (was " + record.previous + ")" : "")
    : record.type.replace("_", " ") + (record.zone ? " in " + record.zone : "");
  text.append(el("span", {class: "type"}, what), document.createTextNode(" "),
              el("time", {datetime: record.time}, record.time.slice(0, 19).replace("T", " ")));
  const clip = record.clip ? record.clip.split("/").pop() : "";
  if (/^[\w.-]+\.(mp4|avi)$/.test(clip) && !clip.startsWith(".")) {  // a clip the monitor named; plays in a tab
    text.appendChild(el("a", {href: url("/clips/" + encodeURIComponent(clip)), class: "clip"}, "\u25b6 clip"));
    text.appendChild(document.createTextNode(" "));
  }
  const skip = new Set(["type", "time", "zone", "state", "previous", "boxes", "snapshot", "clip"]);
  const details = Object.entries(record)
    .filter(([key, value]) => !skip.has(key) && value !== null)
    .map(([key, value]) => key + " " + (typeof value === "object" ? JSON.stringify(value) : value));
  if (record.snapshot) details.push("snapshot " + record.snapshot);
  text.appendChild(el("div", {class: "muted"}, details.join(" · ")));
  item.appendChild(text);
  return item;
}

async function getJson(path) {
  const response = await fetch(url(path), {cache: "no-store"});
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

async function refreshEvents() {
  const records = await getJson("/api/events");
  const list = document.getElementById("events");
  list.replaceChildren(...(records.length ? records.map(eventLine) : [el("li", {class: "muted"}, "none yet")]));
}

async function refreshData() {
  try {
    const status = await getJson("/api/status");
    const history = await getJson("/api/history");
    const state = document.getElementById("state");
    state.textContent = status.tamper ? "tamper: " + status.tamper : (status.state ?? "waiting");
    state.className = "state state-" + (status.state ?? "none");
    document.title = "monitor: " + (status.state ?? "waiting");
    setText("score", fmt(status.score, 4));
    setText("fps", fmt(status.fps, 1));
    setText("frames", status.frames);
    setText("reused", status.reused_share == null ? "-" : Math.round(100 * status.reused_share) + " % of comparisons");
    setText("uptime", duration(status.uptime_seconds));
    setText("history-minutes", String(status.history_seconds / 60));
    drawZones(status.zones, status.arming);
    document.getElementById("arming").hidden = !status.arming;
    drawChart(history, status.zones);
    const latest = status.last_event ? status.last_event.time + status.last_event.type : "";
    if (latest !== shownEvent) {
      shownEvent = latest;
      await refreshEvents();
    }
  } catch (err) {
    setText("error", "no answer from the monitor: " + err);
    return;
  }
  setText("error", "");
}

// Arming (issue 14): a button per zone and two for the whole monitor, POSTed with the page's token.
async function command(action, zone) {
  const body = {zone: zone};
  const seconds = document.getElementById("arm-for").value;
  if (seconds) body.for_seconds = Number(seconds);
  const response = await fetch(url("/api/" + action), {
    method: "POST",
    cache: "no-store",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    setText("error", action + " refused: " + (answer.error || response.status));
    return;
  }
  await refreshData();
}

function armCell(name, zone, arming) {
  const armed = zone.armed !== false;
  const cell = el("td", {class: "zone-armed" + (armed ? "" : " disarmed")}, armed ? "armed" : "disarmed");
  if (zone.armed_reason) cell.appendChild(el("div", {class: "muted"}, zone.armed_reason));
  if (arming) {
    const action = armed ? "disarm" : "arm";
    const button = el("button", {type: "button", "data-action": action}, action);
    button.addEventListener("click", () => command(action, name));
    cell.appendChild(button);
  }
  return cell;
}

document.getElementById("arm-all").addEventListener("click", () => command("arm", null));
document.getElementById("disarm-all").addEventListener("click", () => command("disarm", null));

// The live view: the MJPEG stream while the page is in sight (the monitor encodes frames only
// while someone watches); a still every two seconds when the stream is refused (too many viewers),
// trying the stream again now and then.
let streaming = false, streamRetryAt = 0;

function watchLive() {
  const frame = document.getElementById("frame");
  if (document.hidden) {
    streaming = false;
    frame.src = url("/frame.jpg?t=" + Date.now());  // ends the stream's connection
  } else if (Date.now() >= streamRetryAt) {
    streaming = true;
    frame.src = url("/stream.mjpg");
  }
}

document.getElementById("frame").addEventListener("error", () => {
  if (!streaming) return;
  streaming = false;
  streamRetryAt = Date.now() + 30000;
  refreshFrame();
});
document.addEventListener("visibilitychange", watchLive);
document.getElementById("zones-link").href = url("/zones");
watchLive();
document.getElementById("reference").src = url("/reference.jpg");
refreshData();
setInterval(() => {
  if (!streaming && !document.hidden) {
    if (Date.now() >= streamRetryAt) watchLive(); else refreshFrame();
  }
  refreshData();
}, 2000);
