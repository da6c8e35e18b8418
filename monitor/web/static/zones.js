// The zone editor: the zones of the config file drawn over the picture, edited with the mouse,
// saved back with PUT /api/config/zones (the token in an Authorization header, never a cookie).
// The model is the zones as written in the file (zone name -> zone): coordinates stay in the
// zone's own units, and only what is edited changes. Text is only ever set with textContent.
"use strict";

// params, token, SVG, url() and el() come from common.js.
// drawing.py's zone colours, in config order.
const COLOURS = ["#ffc800", "#00a0ff", "#3cc850", "#e650e6", "#dcdc3c", "#ff78c8", "#5affff"];

const ed = {
  info: null,       // GET /api/config/zones
  zones: {},        // name -> zone, as written
  saved: {},        // current name -> the name it runs under (renamed or new zones: none)
  selected: null,   // zone name
  polygon: null,    // {group: "include" | "exclude", index}
  vertex: null,     // index of the clicked point of the selected polygon
  drawing: null,    // {group, points: [[x, y] in pixels]}
  drag: null,       // {index} while a point is dragged
  dirty: false,
  live: {},         // /api/status zones
  editable: false,
};

const $ = id => document.getElementById(id);

function say(text, kind) {
  const node = $("message");
  node.textContent = text;
  node.className = kind || "";
}

function showProblems(lines) {
  $("problems").replaceChildren(...lines.map(line => el("li", {}, line)));
}

// -- geometry: the zone's own units <-> frame pixels -------------------------------

function size() { return [ed.info.width, ed.info.height]; }
function units(zone) { return (zone.mask && zone.mask.units) || "pixels"; }

function toPixels(zone, point) {
  const [w, h] = size();
  return units(zone) === "fraction" ? [point[0] * w, point[1] * h] : [point[0], point[1]];
}

function fromPixels(zone, point) {
  const [w, h] = size();
  const x = Math.min(Math.max(point[0], 0), w), y = Math.min(Math.max(point[1], 0), h);
  if (units(zone) === "fraction") return [Math.round(x / w * 1e4) / 1e4, Math.round(y / h * 1e4) / 1e4];
  return [Math.round(x), Math.round(y)];
}

function polygons(zone, group) { return (zone.mask && zone.mask[group]) || []; }

function eventPoint(event) {
  const overlay = $("overlay");
  const p = overlay.createSVGPoint();
  p.x = event.clientX;
  p.y = event.clientY;
  const q = p.matrixTransform(overlay.getScreenCTM().inverse());
  return [q.x, q.y];
}

function handleRadius() {
  const overlay = $("overlay");
  return 7 * ed.info.width / Math.max(overlay.clientWidth, 1);
}

// -- drawing the overlay ---------------------------------------------------------------

function colourOf(name) { return COLOURS[Object.keys(ed.zones).indexOf(name) % COLOURS.length]; }

function render() {
  const overlay = $("overlay");
  overlay.replaceChildren();
  const [w, h] = size();
  overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
  $("stage").style.width = `min(100%, ${(78 * w / h).toFixed(2)}vh)`;
  const r = handleRadius();
  for (const [name, zone] of Object.entries(ed.zones)) {
    const colour = colourOf(name), chosen = name === ed.selected;
    const group = svg(overlay, "g", {class: chosen ? "zone chosen" : "zone", "data-zone": name});
    const include = polygons(zone, "include");
    if (!include.length) {
      svg(group, "rect", {x: 1, y: 1, width: w - 2, height: h - 2, fill: "none", stroke: colour,
                          "stroke-dasharray": "6 4", class: "outline"});
    }
    for (const kind of ["include", "exclude"]) {
      polygons(zone, kind).forEach((points, index) => {
        const shape = svg(group, "polygon", {
          points: points.map(p => toPixels(zone, p).join(",")).join(" "),
          class: `outline ${kind}` + (chosen && ed.polygon && ed.polygon.group === kind && ed.polygon.index === index
                                      ? " current" : ""),
          stroke: colour, fill: kind === "include" ? colour : "#000",
        });
        shape.addEventListener("pointerdown", event => {
          if (ed.drawing) return;
          event.stopPropagation();
          select(name, {group: kind, index});
        });
      });
    }
    const anchor = include.length ? toPixels(zone, include[0][0]) : [6, 6];
    const label = svg(group, "text", {x: anchor[0] + 4, y: anchor[1] + 14 * r / 7, class: "label", fill: colour,
                                      "font-size": 13 * r / 7, "stroke-width": r / 3}, name);
    label.addEventListener("pointerdown", event => {
      if (ed.drawing) return;
      event.stopPropagation();
      select(name);
    });
  }
  if (ed.editable) drawHandles(overlay, r);
  if (ed.drawing) drawDraft(overlay, r);
}

function drawHandles(overlay, r) {
  const zone = ed.zones[ed.selected], current = ed.polygon;
  if (!zone || !current || ed.drawing) return;
  const points = polygons(zone, current.group)[current.index];
  if (!points) return;
  const pixels = points.map(p => toPixels(zone, p));
  pixels.forEach((p, i) => {
    const q = pixels[(i + 1) % pixels.length];
    const mid = svg(overlay, "circle", {cx: (p[0] + q[0]) / 2, cy: (p[1] + q[1]) / 2, r: r * 0.55,
                                        class: "midpoint", "data-index": i});
    mid.addEventListener("pointerdown", event => {  // a new point there, dragged at once
      event.stopPropagation();
      if (!ed.editable) return;
      points.splice(i + 1, 0, fromPixels(zone, eventPoint(event)));
      startDrag(event, i + 1);
      ed.drag.moved = true;  // a point was added, even if it is not dragged any further
    });
  });
  pixels.forEach((p, i) => {
    const handle = svg(overlay, "circle", {cx: p[0], cy: p[1], r: r, "data-index": i,
                                           class: i === ed.vertex ? "vertex current" : "vertex"});
    handle.addEventListener("pointerdown", event => { event.stopPropagation(); startDrag(event, i); });
  });
}

function drawDraft(overlay, r) {
  const points = ed.drawing.points;
  const colour = ed.drawing.group === "include" ? colourOf(ed.selected) : "#ffffff";
  svg(overlay, "polyline", {points: points.map(p => p.join(",")).join(" "), class: "draft", stroke: colour});
  points.forEach((p, i) => svg(overlay, "circle", {cx: p[0], cy: p[1], r: i === 0 ? r * 1.3 : r * 0.8,
                                                   class: i === 0 ? "vertex first" : "vertex"}));
}

// -- editing ------------------------------------------------------------------------------

function changed() {
  ed.dirty = true;
  say("unsaved changes", "warn");
  render();
  renderPanel();
}

function select(name, polygon) {
  const zone = ed.zones[name];
  if (polygon === undefined) polygon = zone && polygons(zone, "include").length ? {group: "include", index: 0} : null;
  ed.selected = name;
  ed.polygon = polygon;
  ed.vertex = null;
  render();
  renderPanel();
}

// The overlay is drawn afresh on every change, so the pointer is captured by the overlay itself
// (which stays) and a double-click is matched to the nearest point, not to an element.
function startDrag(event, index) {
  if (!ed.editable) return;
  ed.drag = {index, moved: false};
  ed.vertex = index;
  $("overlay").setPointerCapture(event.pointerId);
}

function onPointerMove(event) {
  if (!ed.drag) return;
  const zone = ed.zones[ed.selected];
  polygons(zone, ed.polygon.group)[ed.polygon.index][ed.drag.index] = fromPixels(zone, eventPoint(event));
  ed.drag.moved = true;
  render();
}

function onPointerUp() {
  if (!ed.drag) return;
  const moved = ed.drag.moved;
  ed.drag = null;
  if (moved) {
    changed();
    return;
  }
  // A click on a point only marks it (for Delete). Not drawn afresh: the browser sends no click,
  // and so no double-click, once the element pressed is gone.
  for (const handle of document.querySelectorAll("#overlay circle.vertex")) {
    handle.classList.toggle("current", Number(handle.dataset.index) === ed.vertex);
  }
}

function onDoubleClick(event) {
  const zone = ed.zones[ed.selected];
  if (ed.drawing || !ed.editable || !zone || !ed.polygon) return;
  const point = eventPoint(event), points = polygons(zone, ed.polygon.group)[ed.polygon.index] || [];
  const distances = points.map(p => { const q = toPixels(zone, p); return Math.hypot(q[0] - point[0], q[1] - point[1]); });
  const nearest = distances.indexOf(Math.min(...distances));
  if (nearest >= 0 && distances[nearest] <= handleRadius() * 1.5) deletePoint(nearest);
}

function deletePoint(index) {
  const zone = ed.zones[ed.selected];
  const points = polygons(zone, ed.polygon.group)[ed.polygon.index];
  if (points.length <= 3) {
    say("a polygon keeps at least 3 points: delete the polygon instead", "warn");
    return;
  }
  points.splice(index, 1);
  ed.vertex = null;
  changed();
}

function startDrawing(group) {
  if (!ed.selected || !ed.editable) return;
  ed.drawing = {group, points: []};
  $("drawing").hidden = false;
  $("hint").textContent = `click on the picture to draw ${group === "include" ? "the watched" : "an excluded"} area`;
  render();
}

function onStageClick(event) {
  if (!ed.drawing) return;
  const point = eventPoint(event), points = ed.drawing.points;
  const first = points[0], r = handleRadius() * 1.5;
  if (points.length >= 3 && Math.hypot(point[0] - first[0], point[1] - first[1]) <= r) {
    finishDrawing();
    return;
  }
  points.push(point);
  render();
}

function finishDrawing() {
  const draft = ed.drawing;
  if (!draft) return;
  if (draft.points.length < 3) {
    say("a polygon needs at least 3 points", "warn");
    return;
  }
  const zone = ed.zones[ed.selected];
  zone.mask = zone.mask || {units: "fraction"};
  zone.mask[draft.group] = zone.mask[draft.group] || [];
  zone.mask[draft.group].push(draft.points.map(p => fromPixels(zone, p)));
  ed.polygon = {group: draft.group, index: zone.mask[draft.group].length - 1};
  stopDrawing();
  changed();
}

function stopDrawing() {
  ed.drawing = null;
  $("drawing").hidden = true;
  $("hint").textContent = "";
  render();
}

function addZone() {
  const name = $("new-name").value.trim();
  if (!name) { say("type a name for the zone first", "warn"); return; }
  if (name in ed.zones) { say(`there is a zone ${name} already`, "warn"); return; }
  ed.zones[name] = {mask: {units: "fraction", include: []}};
  $("new-name").value = "";
  select(name, null);
  changed();
  startDrawing("include");
}

function renameZone() {
  const old = ed.selected, name = $("zone-name").value.trim();
  if (!old || name === old) return;
  if (!name || name in ed.zones) {
    say(name ? `there is a zone ${name} already` : "a zone needs a name", "warn");
    $("zone-name").value = old;
    return;
  }
  // Rebuilt so that the zone keeps its place in the file.
  ed.zones = Object.fromEntries(Object.entries(ed.zones).map(([key, zone]) => [key === old ? name : key, zone]));
  if (old in ed.saved) { ed.saved[name] = ed.saved[old]; delete ed.saved[old]; }
  ed.selected = name;
  $("zone-name").dataset.zone = name;
  changed();
}

function deleteZone() {
  if (!ed.selected) return;
  delete ed.zones[ed.selected];
  delete ed.saved[ed.selected];
  ed.selected = null;
  ed.polygon = null;
  changed();
}

function deletePolygon() {
  const zone = ed.zones[ed.selected];
  if (!zone || !ed.polygon) { say("click a polygon first", "warn"); return; }
  polygons(zone, ed.polygon.group).splice(ed.polygon.index, 1);
  ed.polygon = null;
  changed();
}

// The threshold: the zone's own, or the top-level one it inherits; clear_threshold keeps its distance.
function thresholds(zone) {
  const own = zone.detection || {}, top = ed.info.defaults;
  return [own.threshold ?? top.threshold, own.clear_threshold ?? top.clear_threshold];
}

function setThreshold() {
  const zone = ed.zones[ed.selected];
  const [threshold, clear] = thresholds(zone);
  const value = Number($("threshold").value);
  const gap = Math.max(clear - threshold, 0);
  zone.detection = Object.assign(zone.detection || {}, {
    threshold: value, clear_threshold: Math.round(Math.min(1, value + gap) * 1000) / 1000});
  changed();
}

// -- the side panel -----------------------------------------------------------------------

function renderPanel() {
  const list = $("zone-list");
  list.replaceChildren();
  for (const name of Object.keys(ed.zones)) {
    const item = el("li", {class: name === ed.selected ? "chosen" : "", "data-zone": name});
    const swatch = el("span", {class: "swatch"});
    swatch.style.background = colourOf(name);
    const live = ed.live[ed.saved[name]];
    item.append(swatch, el("b", {}, name), document.createTextNode(
      " " + (ed.zones[name].states ? "state" : "change") + (live ? ` · ${live.state} · ${fmt(live.score)}` : " · not running")));
    item.addEventListener("click", () => select(name));
    list.appendChild(item);
  }
  const zone = ed.zones[ed.selected];
  $("zone-form").hidden = !zone;
  if (!zone) return;
  const nameInput = $("zone-name");
  if (nameInput.dataset.zone !== ed.selected) {  // not while the user is typing a new one
    nameInput.value = ed.selected;
    nameInput.dataset.zone = ed.selected;
  }
  const image = zone.mask && zone.mask.image ? ` · also the mask image ${zone.mask.image} (not drawn here)` : "";
  const [w, h] = size();
  $("zone-units").textContent = (units(zone) === "fraction" ? "coordinates in fractions of the frame (0-1)"
                                 : `coordinates in pixels of the ${w}x${h} frame`) + image;
  const polys = $("polygon-list");
  polys.replaceChildren();
  for (const group of ["include", "exclude"]) {
    polygons(zone, group).forEach((points, index) => {
      const current = ed.polygon && ed.polygon.group === group && ed.polygon.index === index;
      const item = el("li", {class: current ? "chosen" : ""},
                      `${group === "include" ? "watched" : "excluded"} ${index + 1}: ${points.length} points`);
      item.addEventListener("click", () => select(ed.selected, {group, index}));
      polys.appendChild(item);
    });
  }
  if (!polygons(zone, "include").length) polys.appendChild(el("li", {class: "muted"}, "no watched polygon: the whole frame"));
  const [threshold, clear] = thresholds(zone);
  $("threshold").value = threshold;
  $("threshold-value").textContent = `${threshold.toFixed(3)} (clears at ${clear.toFixed(3)})`;
  drawMeter(zone, threshold);
  const states = $("state-list");
  states.replaceChildren();
  for (const [state, path] of Object.entries(zone.states || {})) {
    const item = el("li", {}, `${state}: ${path} `);
    const again = el("button", {}, "capture again");
    again.addEventListener("click", () => capture(state));
    const remove = el("button", {}, "remove");
    remove.addEventListener("click", () => {
      delete zone.states[state];
      if (!Object.keys(zone.states).length) delete zone.states;
      changed();
    });
    again.disabled = remove.disabled = !ed.editable;
    item.append(again, remove);
    states.appendChild(item);
  }
}

function fmt(value) { return value === null || value === undefined ? "-" : Number(value).toFixed(3); }

function drawMeter(zone, threshold) {
  const meter = $("meter");
  meter.replaceChildren();
  const live = ed.live[ed.saved[ed.selected]];
  const score = live ? live.score : null;
  const low = Math.max(0, Math.floor((Math.min(threshold, score ?? 1) - 0.05) * 20) / 20);
  const x = v => 4 + 292 * (v - low) / (1 - low);
  svg(meter, "rect", {x: 4, y: 12, width: 292, height: 10, class: "track"});
  svg(meter, "rect", {x: 4, y: 12, width: Math.max(0, x(threshold) - 4), height: 10, class: "below"});
  svg(meter, "line", {x1: x(threshold), y1: 4, x2: x(threshold), y2: 30, class: "threshold"});
  if (score !== null) svg(meter, "circle", {cx: x(score), cy: 17, r: 6, class: score < threshold ? "score low" : "score"});
  svg(meter, "text", {x: 4, y: 33, class: "tick"}, low.toFixed(2));
  svg(meter, "text", {x: 278, y: 33, class: "tick"}, "1.00");
  $("live-score").textContent = !live
    ? "no live score: the zone runs once it is saved"
    : `live score ${fmt(score)} (of the zone as saved): ` +
      (score < threshold ? "below the threshold, it would count as a change" : "at or above the threshold") +
      (zone.states && live.scores ? " · " + Object.entries(live.scores).map(([s, v]) => `${s} ${fmt(v)}`).join(", ") : "");
}

// -- talking to the monitor -------------------------------------------------------------

async function call(method, path, body) {
  const headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token};
  if (method === "PUT" && ed.info.version) headers["If-Match"] = ed.info.version;
  const response = await fetch(path, {method, headers, body: JSON.stringify(body), cache: "no-store"});
  let answer = {};
  try { answer = await response.json(); } catch (err) { answer = {problems: [`${response.status} ${response.statusText}`]}; }
  return [response.ok, answer];
}

async function save() {
  showProblems([]);
  if (ed.drawing) finishDrawing();
  say("saving...");
  const [ok, answer] = await call("PUT", "/api/config/zones", ed.zones);
  if (!ok) {
    say("not saved: the config was left as it was", "error");
    showProblems(answer.problems || []);
    return;
  }
  ed.info.version = answer.version;
  ed.dirty = false;
  say(`saved to ${answer.saved} (the old one is ${answer.backup}); the monitor is reloading...`, "ok");
  const names = answer.zones;
  for (let i = 0; i < 30; i++) {
    await new Promise(resolve => setTimeout(resolve, 500));
    await refreshLive();
    if (names.every(name => name in ed.live)) {
      ed.saved = Object.fromEntries(names.map(name => [name, name]));
      say(`saved to ${answer.saved}; the monitor runs the new zones`, "ok");
      renderPanel();
      return;
    }
  }
  say(`saved to ${answer.saved}, but the monitor does not run the new zones yet: see its log`, "error");
}

async function capture(state) {
  const name = state || $("new-state").value.trim();
  if (!name) { say("type a name for the state first", "warn"); return; }
  say(`capturing ${name}...`);
  const [ok, answer] = await call("POST", "/api/zones/capture-state", {zone: ed.selected, state: name});
  if (!ok) {
    say("not captured", "error");
    showProblems(answer.problems || []);
    return;
  }
  const zone = ed.zones[ed.selected];
  zone.states = Object.assign(zone.states || {}, {[name]: answer.path});
  $("new-state").value = "";
  changed();
  say(`captured ${name} into ${answer.file} (median of ${answer.frames} frames)` +
      (answer.reloading ? "; the running zone uses it now" : "; save to use it"), "ok");
}

async function getJson(path) {
  const response = await fetch(url(path), {cache: "no-store"});
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

async function refreshLive() {
  try {
    ed.live = (await getJson("/api/status")).zones || {};
  } catch (err) {
    ed.live = {};
  }
  if (!ed.drag) renderPanel();
}

function refreshPicture() {
  const which = document.querySelector("input[name=picture]:checked").value;
  const next = new Image();
  next.onload = () => { $("picture").src = next.src; };
  next.src = url(`/plain/${which}.jpg?t=${Date.now()}`);
}

async function load() {
  say("loading...");
  ed.info = await getJson("/api/config/zones");
  ed.zones = ed.info.zones;
  ed.saved = Object.fromEntries(Object.keys(ed.zones).map(name => [name, name]));
  ed.dirty = false;
  const blocked = ed.info.read_only || ed.info.not_writable;
  ed.editable = !blocked && !ed.info.problems.length;
  $("notice").hidden = !blocked;
  $("notice").textContent = blocked || "";
  for (const id of ["save", "add-zone", "add-include", "add-exclude", "delete-polygon", "delete-zone", "capture",
                    "threshold", "zone-name", "new-name", "new-state"]) {
    $(id).disabled = !ed.editable;
  }
  showProblems(ed.info.problems.length ? ["the config file has problems; fix them by hand first:", ...ed.info.problems] : []);
  say(ed.editable ? `editing ${ed.info.config}` : `viewing ${ed.info.config || "the zones"}`);
  select(Object.keys(ed.zones)[0] || null);
  await refreshLive();
}

function wire() {
  $("back").href = url("/");
  $("overlay").addEventListener("pointermove", onPointerMove);
  $("overlay").addEventListener("pointerup", onPointerUp);
  $("overlay").addEventListener("click", onStageClick);
  $("overlay").addEventListener("dblclick", onDoubleClick);
  $("add-zone").addEventListener("click", addZone);
  $("zone-name").addEventListener("change", renameZone);
  $("add-include").addEventListener("click", () => startDrawing("include"));
  $("add-exclude").addEventListener("click", () => startDrawing("exclude"));
  $("delete-polygon").addEventListener("click", deletePolygon);
  $("delete-zone").addEventListener("click", deleteZone);
  $("finish").addEventListener("click", finishDrawing);
  $("cancel").addEventListener("click", stopDrawing);
  $("threshold").addEventListener("input", setThreshold);
  $("capture").addEventListener("click", () => capture(null));
  $("save").addEventListener("click", save);
  $("revert").addEventListener("click", () => load().catch(err => say("cannot load the zones: " + err, "error")));
  for (const radio of document.querySelectorAll("input[name=picture]")) radio.addEventListener("change", refreshPicture);
  document.addEventListener("keydown", event => {
    if (event.target.tagName === "INPUT") return;
    if (event.key === "Escape" && ed.drawing) stopDrawing();
    if (event.key === "Enter" && ed.drawing) finishDrawing();
    if ((event.key === "Delete" || event.key === "Backspace") && ed.vertex !== null && ed.editable) deletePoint(ed.vertex);
  });
  window.addEventListener("beforeunload", event => { if (ed.dirty) event.preventDefault(); });
  window.addEventListener("resize", () => ed.info && render());
}

wire();
refreshPicture();
load().catch(err => say("cannot load the zones: " + err, "error"));
setInterval(refreshLive, 1000);
setInterval(() => {
  if (document.querySelector("input[name=picture]:checked").value === "frame" && !document.hidden) refreshPicture();
}, 1000);
