/* Small helpers with no knowledge of the viewer: elements, localStorage, text and numbers. */

export const $ = (id) => document.getElementById(id);

/** Creates an element; `props` may hold className, text, title and attributes (attrs). */
export function el(tag, props, children) {
  const node = document.createElement(tag);
  const p = props || {};
  if (p.className) node.className = p.className;
  if (p.text !== undefined && p.text !== null) node.textContent = String(p.text);
  if (p.title) node.title = p.title;
  for (const [k, v] of Object.entries(p.attrs || {})) {
    if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children || []) if (c) node.appendChild(c);
  return node;
}

/** The page's state for tests and styles: loading | ready | error. */
export const setBodyState = (s) => { document.body.dataset.state = s; };

export function storageGet(key) {
  try { return window.localStorage.getItem(key); } catch (e) { return null; }
}
export function storageSet(key, value) {
  try { window.localStorage.setItem(key, value); } catch (e) { /* private mode: keep going */ }
}
export function storageRemove(key) {
  try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
}

export const errorText = (e) => (e && e.message) ? e.message : String(e);
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
export const shellQuote = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";
export const withQuery = (base, qs) => (qs ? base + '?' + qs : base);
export const decodeText = (buf) => new TextDecoder('utf-8').decode(buf || new ArrayBuffer(0));

export function truncate(s, n) {
  return s.length > n ? s.slice(0, n) + '… [' + (s.length - n) + ' more characters]' : s;
}

/** A value as a table cell shows it. */
export function cellText(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
