// What the status page (app.js) and the zone editor (zones.js) share: the page's token, passed
// on to every request it makes, and building elements (HTML and SVG) whose text is only ever set with
// textContent. Loaded before either script (both are deferred, so they run in order).
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const SVG = "http://www.w3.org/2000/svg";

function url(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// An SVG element appended to parent; its text, too, only through textContent.
function svg(parent, tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}
