/* Talking to the server: run URLs, the fetch wrapper that describes a run, the x-fused-metadata
 * header, readable error messages, and the layer names of an MVT answer. */

import { decodeText, errorText, truncate } from './dom.js';

/** A run that has not happened (the shape of `state.lastRun`). */
export function emptyRun() {
  return { status: null, contentType: null, metadata: null, error: null, cache: null, ms: null, url: null };
}

// ---------------------------------------------------------------- URLs of a shared UDF

export const runBase = (udf) => location.origin + '/v1/realtime-shared/' + encodeURIComponent(udf.token) + '/run';
export const tileUrl = (udf, t, format, qs) =>
  runBase(udf) + '/tiles/' + t.z + '/' + t.x + '/' + t.y + '?format=' + format + (qs ? '&' + qs : '');
export const tileTemplate = (udf, kind, qs) =>
  runBase(udf) + '/tiles/{z}/{x}/{y}?format=' + (kind === 'raster' ? 'png' : 'mvt') + (qs ? '&' + qs : '');
export const fileUrl = (udf, format, qs) => runBase(udf) + '?format=' + format + (qs ? '&' + qs : '');

// ---------------------------------------------------------------- metadata and errors

/** The x-fused-metadata header (JSON, possibly URL-encoded) as an object, or null. */
function parseMetadata(raw) {
  if (!raw) return null;
  for (const text of [raw, safeDecode(raw)]) {
    try {
      const v = JSON.parse(text);
      if (v && typeof v === 'object') return v;
    } catch (e) { /* try the next form */ }
  }
  return null;
}
function safeDecode(s) {
  try { return decodeURIComponent(s); } catch (e) { return s; }
}

/** The `detail` of an error body (JSON {"detail": …}), or the body text itself. */
export function detailOf(text) {
  if (!text) return '';
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && 'detail' in v) {
      return typeof v.detail === 'string' ? v.detail : JSON.stringify(v.detail, null, 2);
    }
  } catch (e) { /* not JSON */ }
  return truncate(text, 2000);
}

/** The exception the metadata reports, as "Class: message (line N)". */
function exceptionLine(meta) {
  if (!meta || (!meta.has_exception && !meta.errormsg)) return '';
  const cls = meta.exception_class ? String(meta.exception_class) : '';
  const msg = meta.errormsg ? String(meta.errormsg) : '';
  let line = cls && msg ? cls + ': ' + msg : cls || msg;
  if (meta.lineno !== undefined && meta.lineno !== null) line += ' (line ' + meta.lineno + ')';
  return line;
}

function failureMessage(run) {
  const head = run.status === 422 ? 'The UDF failed (HTTP 422)'
    : 'HTTP ' + run.status + (run.statusText ? ' ' + run.statusText : '');
  const detail = run.status >= 400 ? detailOf(decodeText(run.body)) : '';
  const exc = exceptionLine(run.metadata);
  const parts = run.status >= 400 ? [head] : ['The UDF raised an exception'];
  if (detail) parts.push(detail);
  if (exc && !(detail && errormsgIn(detail, run.metadata))) parts.push(exc);
  return parts.join('\n');
}
function errormsgIn(detail, meta) {
  return !!(meta && meta.errormsg && detail.includes(String(meta.errormsg)) &&
    (!meta.exception_class || detail.includes(String(meta.exception_class))));
}

/** A readable message for a MapLibre tile error, with the server's `detail` when it has one. */
export async function tileErrorMessage(err) {
  let detail = '';
  try {
    if (err.body && typeof err.body.text === 'function') detail = detailOf(await err.body.text());
  } catch (e) { /* no body */ }
  const where = /\/tiles\/(\d+)\/(\d+)\/(\d+)/.exec(err.url || '');
  const tile = where ? ' (tile ' + where[1] + '/' + where[2] + '/' + where[3] + ')' : '';
  if (err.status) return 'Tile request failed: HTTP ' + err.status + tile + (detail ? '\n' + detail : '');
  return 'Map error' + tile + ': ' + (err.message || String(err));
}

// ---------------------------------------------------------------- runs

/** GETs a run URL and describes the outcome; never throws. */
export async function request(url) {
  const run = Object.assign(emptyRun(), { url, ok: false, statusText: '', contentType: '', body: null });
  const t0 = performance.now();
  try {
    const res = await fetch(url, { credentials: 'same-origin' });
    run.status = res.status;
    run.statusText = res.statusText || '';
    run.contentType = (res.headers.get('content-type') || '').toLowerCase();
    run.cache = res.headers.get('x-cache');
    run.metadata = parseMetadata(res.headers.get('x-fused-metadata'));
    run.body = await res.arrayBuffer();
    run.ok = res.ok && !(run.metadata && run.metadata.has_exception);
    if (!run.ok) run.error = failureMessage(run);
  } catch (e) {
    run.error = 'Network error: could not reach the server (' + errorText(e) + ')';
  }
  run.ms = Math.round(performance.now() - t0);
  return run;
}

// ---------------------------------------------------------------- vector tiles

/** Names of the layers in an MVT (protobuf: Tile.layers = 3, Layer.name = 1). [] if unreadable. */
export function mvtLayerNames(buffer) {
  const names = [];
  try {
    const bytes = new Uint8Array(buffer);
    const varint = (p) => {
      let value = 0;
      let scale = 1;
      for (;;) {
        if (p.i >= bytes.length) throw new Error('truncated');
        const b = bytes[p.i++];
        value += (b & 0x7f) * scale;
        if (b < 0x80) return value;
        scale *= 128;
      }
    };
    const fieldsOf = (start, end, onField) => {
      const p = { i: start };
      while (p.i < end) {
        const key = varint(p);
        const wire = key % 8;
        const field = Math.floor(key / 8);
        if (wire === 0) varint(p);
        else if (wire === 1) p.i += 8;
        else if (wire === 5) p.i += 4;
        else if (wire === 2) { const len = varint(p); onField(field, p.i, p.i + len); p.i += len; }
        else throw new Error('bad wire type');
      }
    };
    fieldsOf(0, bytes.length, (field, s, e) => {
      if (field !== 3) return;
      fieldsOf(s, e, (f, ls, le) => { if (f === 1) names.push(decodeText(bytes.slice(ls, le))); });
    });
  } catch (e) { /* not an MVT we can read: use the catalog's layer */ }
  return names;
}
