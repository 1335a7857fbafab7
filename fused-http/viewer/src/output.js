/* A file UDF's output in #table-preview: GeoJSON as a table (and on the map), other JSON and
 * text as-is, images as an image. */

import { $, el, errorText, truncate, decodeText, cellText } from './dom.js';
import { setGeoJsonSource } from './map.js';
import { showError } from './run-panel.js';

const PREVIEW_ROWS = 50;

let imageUrl = null; // object URL of a PNG output, revoked when replaced

export function clearOutput() {
  $('table-preview').replaceChildren();
}

/** Renders a file UDF's output; returns true when something was put on the map. */
export function showFileOutput(run) {
  const box = $('table-preview');
  const ct = run.contentType;
  if (ct.includes('json')) {
    const text = decodeText(run.body);
    let value;
    try { value = JSON.parse(text); } catch (e) {
      box.appendChild(el('pre', { className: 'json-output', text: truncate(text, 200000) }));
      return false;
    }
    const fc = asFeatureCollection(value);
    if (!fc) {
      box.appendChild(el('pre', { className: 'json-output', text: truncate(JSON.stringify(value, null, 2), 200000) }));
      return false;
    }
    box.appendChild(featureTable(fc));
    if (!fc.features.some((f) => f.geometry)) return false;
    try { setGeoJsonSource(fc); return true; } catch (e) {
      showError('Could not draw the GeoJSON: ' + errorText(e));
      return false;
    }
  }
  if (ct.startsWith('image/')) {
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    imageUrl = URL.createObjectURL(new Blob([run.body], { type: ct }));
    box.appendChild(el('img', { attrs: { src: imageUrl, alt: 'UDF output' } }));
    return false;
  }
  if (ct.startsWith('text/')) {
    box.appendChild(el('pre', { className: 'json-output', text: truncate(decodeText(run.body), 200000) }));
    return false;
  }
  box.appendChild(el('p', { className: 'muted', text: run.body.byteLength + ' bytes of ' + (ct || 'unknown type') }));
  return false;
}

// ---------------------------------------------------------------- GeoJSON preview

function asFeatureCollection(v) {
  if (!v || typeof v !== 'object') return null;
  if (v.type === 'FeatureCollection' && Array.isArray(v.features)) {
    return { type: 'FeatureCollection', features: v.features.filter((f) => f && typeof f === 'object') };
  }
  if (v.type === 'Feature') return { type: 'FeatureCollection', features: [v] };
  return null;
}

/** Guesses a column's type from its non-null values. */
function guessType(values) {
  const kinds = new Set();
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (typeof v === 'boolean') kinds.add('bool');
    else if (typeof v === 'number') kinds.add(Number.isInteger(v) ? 'int' : 'float');
    else if (typeof v === 'string') kinds.add('str');
    else if (Array.isArray(v)) kinds.add('list');
    else kinds.add('object');
  }
  if (kinds.size === 2 && kinds.has('int') && kinds.has('float')) return 'float';
  if (kinds.size === 0) return 'null';
  return kinds.size === 1 ? [...kinds][0] : 'mixed';
}

function featureTable(fc) {
  const feats = fc.features;
  const props = feats.map((f) => (f.properties && typeof f.properties === 'object' ? f.properties : {}));
  const columns = [];
  for (const p of props) for (const k of Object.keys(p)) if (!columns.includes(k)) columns.push(k);
  const types = columns.map((c) => guessType(props.map((p) => p[c])));
  const hasGeom = feats.some((f) => f.geometry);

  const meta = el('div', { className: 'table-meta' }, [
    el('div', { text: feats.length + ' row' + (feats.length === 1 ? '' : 's') + ' · ' + columns.length +
      ' column' + (columns.length === 1 ? '' : 's') + (feats.length > PREVIEW_ROWS ? ' · first ' + PREVIEW_ROWS + ' shown' : '') }),
    el('div', { className: 'cols', text: columns.map((c, i) => c + ': ' + types[i]).join(', ') +
      (hasGeom ? (columns.length ? ', ' : '') + 'geometry' : '') }),
  ]);
  const head = el('tr', {}, [el('th', { text: '#' })].concat(
    columns.map((c, i) => el('th', { text: c, title: types[i] })),
    hasGeom ? [el('th', { text: 'geometry' })] : []));
  const rows = feats.slice(0, PREVIEW_ROWS).map((f, r) => {
    const cells = [el('td', { className: 'num', text: r })];
    columns.forEach((c, i) => {
      const v = props[r][c];
      const text = truncate(cellText(v), 200);
      const cls = v === null || v === undefined ? 'null' : (types[i] === 'int' || types[i] === 'float') ? 'num' : '';
      cells.push(el('td', { className: cls, text, title: text }));
    });
    if (hasGeom) cells.push(el('td', { text: f.geometry && f.geometry.type ? f.geometry.type : 'null' }));
    return el('tr', {}, cells);
  });
  const table = el('table', {}, [el('thead', {}, [head]), el('tbody', {}, rows)]);
  return el('div', {}, [meta, el('div', { className: 'table-wrap' }, [table])]);
}
