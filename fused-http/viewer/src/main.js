/* fused-rs viewer: lists the UDFs of a fused-rs server, renders a form for their parameters and
 * shows their output: tile UDFs as a MapLibre source (vector MVT or raster PNG), file UDFs as a
 * table preview / JSON / image (GeoJSON also on the map).
 *
 * Plain browser JavaScript modules, no build step, nothing fetched from outside the server. The
 * map library is /viewer/maplibre-gl.js (global `maplibregl`). Hooks for automated tests:
 * window.fusedViewer, document.body.dataset.state (loading | ready | error) and the element ids
 * documented in index.html.
 *
 * This module holds the state and the flow: sign-in and catalog, selecting a UDF, rendering it
 * (tile probe + map source, or file run + output), and the page's event wiring. */

import { $, el, setBodyState, storageGet, storageSet, storageRemove, errorText } from './dom.js';
import { emptyRun, request, detailOf, tileErrorMessage, mvtLayerNames, tileUrl, tileTemplate, fileUrl } from './api.js';
import {
  initMap, whenMapReady, clearMapOutput, setTileSource, waitForIdle, setBasemap, centreTile,
  cornerTiles,
} from './map.js';
import { buildForm, collectParams, setFieldValue, markTouched } from './form.js';
import { clearOutput, showFileOutput } from './output.js';
import { showError, showPending, showRun, clearRunPanel } from './run-panel.js';
import { updateCopyFields, copyText } from './share.js';
import { initColorBy, resetColorBy, refreshColorBy } from './color-by.js';

const TOKEN_KEY = 'fused-token';
const BASEMAP_KEY = 'fused-basemap';
const RENDER_DEBOUNCE_MS = 250;
const MOVE_DEBOUNCE_MS = 300;

// ---------------------------------------------------------------- state

const state = {
  udf: null,          // name of the selected UDF
  udfInfo: null,      // its catalog entry
  params: {},         // the parameter values last sent (parsed)
  lastRun: emptyRun(),
  tileKind: null,     // 'vector' | 'raster' once a tile probe told
  sourceLayer: null,  // MVT layer the vector layers draw
  colorBy: null,      // {property, min, max} the vector features are coloured by, or null
};
let catalog = null;
let renderSeq = 0;        // bumped by every render; stale results are dropped
let renderTimer = null;
let moveTimer = null;
let resolveCatalog;
const catalogLoaded = new Promise((resolve) => { resolveCatalog = resolve; });

const currentUdf = () => state.udfInfo;
const findUdf = (name) => (catalog ? catalog.udfs.find((u) => u.name === name) : undefined) || null;

const map = initMap({ tileError: onTileError, moveEnd: onMoveEnd });

// ---------------------------------------------------------------- map events

/** A tile of the current source failed: say so, unless the probe already did. */
function onTileError(err) {
  const seq = renderSeq;
  tileErrorMessage(err).then((msg) => {
    if (seq !== renderSeq || state.lastRun.error) return; // keep the probe's fuller message
    state.lastRun.error = msg;
    showError(msg);
    if (document.body.dataset.state !== 'loading') setBodyState('error');
  });
}

function onMoveEnd() {
  const udf = currentUdf();
  if (!udf || udf.kind !== 'tile' || !udf.token) return;
  clearTimeout(moveTimer);
  setBodyState('loading');
  moveTimer = setTimeout(() => render({ fromMove: true }), MOVE_DEBOUNCE_MS);
}

function effectiveBasemap() {
  const override = storageGet(BASEMAP_KEY);
  if (override !== null) return override.trim();
  return catalog && typeof catalog.basemap === 'string' ? catalog.basemap.trim() : '';
}

/** (Re)adds the basemap raster under the UDF layers, or removes it when none is set. */
async function applyBasemap() {
  if (!map) return;
  await whenMapReady();
  setBasemap(effectiveBasemap());
}

// ---------------------------------------------------------------- runs

/** Records a run as the last one and shows status, timing, cache, logs and error. */
function recordRun(run) {
  state.lastRun = {
    status: run.status, contentType: run.contentType || null, metadata: run.metadata,
    error: run.error, cache: run.cache, ms: run.ms, url: run.url, kind: run.kind || null,
  };
  showRun(run);
}

/** A failure outside a run (catalog, sign-in, bad selection): shown in #error. */
function showGlobalError(message) {
  state.lastRun = Object.assign(emptyRun(), { error: message });
  clearRunPanel();
  showError(message);
  setBodyState('error');
}

/** Probes the centre tile, then shows the tile source of the kind the server answered with. */
async function renderTile(seq, udf, qs, fromMove) {
  const run = await request(tileUrl(udf, centreTile(udf), 'mvt,png', qs));
  if (seq !== renderSeq) return;
  probeKind(run);
  // An empty centre tile says nothing of the kind (vector or image): until a tile has, look
  // under the view's corners too.
  if (run.ok && !run.kind && !state.tileKind) {
    for (const t of cornerTiles(udf)) {
      const other = await request(tileUrl(udf, t, 'mvt,png', qs));
      if (seq !== renderSeq) return;
      if (probeKind(other)) {
        run.kind = other.kind;
        run.body = other.body;
        break;
      }
    }
  }
  recordRun(run);
  if (!run.ok) {
    if (!fromMove) clearMapOutput(); // stale tiles of other parameters would mislead
    return;
  }
  // Still unknown (nothing anywhere in view): draw as vector tiles for now, and decide when a
  // probe finds something.
  const kind = run.kind || state.tileKind || 'vector';
  if (run.kind) state.tileKind = run.kind;
  if (kind === 'vector') {
    const names = mvtLayerNames(run.body);
    const wanted = typeof udf.layer === 'string' && udf.layer ? udf.layer : udf.name;
    if (names.includes(wanted)) state.sourceLayer = wanted;
    else if (names.length) state.sourceLayer = names[0];
    else if (!state.sourceLayer) state.sourceLayer = wanted;
  }
  await whenMapReady();
  if (seq !== renderSeq) return;
  setTileSource(udf, kind, tileTemplate(udf, kind, qs), state.sourceLayer);
  await waitForIdle(); // new source or new view: wait for its tiles
}

/** Sets `run.kind` from a successful, non-empty tile's content type; true when it did. An empty
 * tile (nothing there, or a UDF that returned None) is labelled with the first format asked for,
 * so it tells nothing. */
function probeKind(run) {
  const ct = run.contentType || '';
  const empty = !run.body || run.body.byteLength === 0;
  if (!run.ok || empty) return false;
  if (ct.includes('vector-tile') || ct.includes('protobuf')) run.kind = 'vector';
  else if (ct.startsWith('image/')) run.kind = 'raster';
  return !!run.kind;
}

/** Runs a file UDF and shows its output. */
async function runFile(seq, udf, qs) {
  const run = await request(fileUrl(udf, 'geojson,json,png', qs));
  if (seq !== renderSeq) return;
  recordRun(run);
  clearOutput();
  clearMapOutput();
  if (run.status >= 200 && run.status < 300 && run.body) {
    await whenMapReady();
    if (seq !== renderSeq) return;
    if (showFileOutput(run)) await waitForIdle();
  }
}

// ---------------------------------------------------------------- render / select

/** Runs the selected UDF with the form's values (tile: probe + source; file: run + output). */
async function render(opts) {
  const fromMove = !!(opts && opts.fromMove);
  clearTimeout(renderTimer);
  if (!fromMove) clearTimeout(moveTimer);
  const seq = ++renderSeq;
  const udf = currentUdf();
  if (!udf) return;
  const collected = collectParams();
  state.params = collected.values;
  updateCopyFields(udf, collected.qs, state.tileKind);
  if (typeof udf.error === 'string' && udf.error) {
    // The server could not load it (a syntax error, no Python runtime): say so, run nothing.
    clearMapOutput();
    showGlobalError(udf.error);
    return;
  }
  if (!udf.token) {
    clearMapOutput();
    showGlobalError('no shared token; create one with `fused udf share ' + udf.name + '`');
    return;
  }
  if (!collected.ok) {
    showGlobalError('A parameter is invalid (see the form); nothing was run.');
    return;
  }
  setBodyState('loading');
  showPending();
  try {
    if (udf.kind === 'tile') await renderTile(seq, udf, collected.qs, fromMove);
    else await runFile(seq, udf, collected.qs);
  } catch (e) {
    if (seq !== renderSeq) return;
    state.lastRun.error = 'The viewer failed: ' + errorText(e);
    showError(state.lastRun.error);
  }
  if (seq !== renderSeq) return;
  updateCopyFields(udf, collected.qs, state.tileKind); // the probe may have told the tile kind
  state.colorBy = refreshColorBy(udf.kind === 'tile' ? state.sourceLayer : null);
  setBodyState(state.lastRun.error ? 'error' : 'ready');
}

async function selectUdf(name) {
  await catalogLoaded;
  const udf = findUdf(name);
  if (!udf) {
    showGlobalError('No UDF named "' + name + '" in the catalog.');
    throw new Error('no UDF named ' + name);
  }
  state.udf = udf.name;
  state.udfInfo = udf;
  state.tileKind = null;
  state.sourceLayer = null;
  state.lastRun = emptyRun();
  state.colorBy = null;
  for (const li of $('udf-list').children) li.setAttribute('aria-selected', String(li.dataset.udf === udf.name));
  showUdfPanel(udf);
  clearOutput();
  clearMapOutput();
  resetColorBy();
  const url = new URL(location.href);
  url.searchParams.set('udf', udf.name);
  history.replaceState(null, '', url.pathname + url.search + url.hash);
  return render();
}

function showUdfPanel(udf) {
  $('udf-panel').hidden = false;
  $('last-run').hidden = false;
  $('output').hidden = udf.kind === 'tile';
  $('udf-name').textContent = udf.name;
  $('udf-badges').replaceChildren(...badges(udf));
  const desc = typeof udf.description === 'string' ? udf.description.trim() : '';
  $('udf-description').textContent = desc;
  $('udf-description').hidden = !desc;
  clearRunPanel();
  buildForm(udf);
}

function badges(udf) {
  const list = [el('span', { className: 'badge ' + (udf.kind === 'tile' ? 'tile' : 'file'), text: udf.kind === 'tile' ? 'tile' : 'file' })];
  if (udf.code) list.push(el('span', { className: 'badge python', text: 'python' }));
  if (!udf.token) list.push(el('span', { className: 'badge notoken', text: 'no token', title: 'no shared token' }));
  return list;
}

async function setParam(name, value) {
  if (!setFieldValue(name, value)) throw new Error('no parameter named ' + name + ' in the form');
  return render();
}

function onFormEdit(e) {
  markTouched(e.target);
  clearTimeout(renderTimer);
  setBodyState('loading'); // a render is due: tests waiting for 'ready' must not see the old one
  renderTimer = setTimeout(() => render(), RENDER_DEBOUNCE_MS);
}

// ---------------------------------------------------------------- catalog and sign-in

/** Moves a `#token=…` from the URL into localStorage. */
function takeTokenFromHash() {
  const hash = location.hash.replace(/^#/, '');
  if (!hash) return false;
  const params = new URLSearchParams(hash);
  const token = params.get('token');
  if (!token) return false;
  storageSet(TOKEN_KEY, token);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  return true;
}

function showSignIn(message) {
  $('signin').hidden = false;
  $('catalog').hidden = true;
  $('udf-panel').hidden = true;
  $('style').hidden = true;
  $('output').hidden = true;
  $('copy-area').hidden = true;
  $('last-run').hidden = true;
  $('signin-error').textContent = message || '';
  $('signin-error').hidden = !message;
  setBodyState('error');
  $('token-input').focus();
}

async function loadCatalog() {
  setBodyState('loading');
  $('signin').hidden = true;
  const token = storageGet(TOKEN_KEY);
  let res;
  try {
    res = await fetch('/v1/viewer/catalog', {
      headers: token ? { Authorization: 'Bearer ' + token } : {},
      cache: 'no-store',
    });
  } catch (e) {
    showGlobalError('Network error: could not load the UDF catalog (' + errorText(e) + ')');
    return;
  }
  if (res.status === 401 || res.status === 403) {
    showSignIn(token ? 'That token was not accepted (HTTP ' + res.status + ').' : '');
    return;
  }
  let body = null;
  try { body = await res.text(); } catch (e) { body = ''; }
  if (!res.ok) {
    showGlobalError('Could not load the UDF catalog: HTTP ' + res.status + '\n' + detailOf(body));
    return;
  }
  try { catalog = normalizeCatalog(JSON.parse(body)); } catch (e) {
    showGlobalError('The UDF catalog is not valid JSON: ' + errorText(e));
    return;
  }
  window.fusedViewer.catalog = catalog;
  showCatalog();
  $('basemap-url').value = effectiveBasemap();
  applyBasemap();
  resolveCatalog(catalog);
  const wanted = new URLSearchParams(location.search).get('udf');
  const first = (wanted && findUdf(wanted)) || catalog.udfs.find((u) => u.kind === 'tile') || catalog.udfs[0];
  if (first) selectUdf(first.name).catch(() => {});
  else setBodyState('ready');
}

function normalizeCatalog(json) {
  const udfs = json && Array.isArray(json.udfs) ? json.udfs : [];
  return {
    udfs: udfs.filter((u) => u && typeof u === 'object' && typeof u.name === 'string')
      .map((u) => Object.assign({}, u, {
        kind: u.kind === 'tile' ? 'tile' : 'file',
        token: typeof u.token === 'string' && u.token ? u.token : null,
        params: Array.isArray(u.params) ? u.params : [],
      })),
    basemap: json && typeof json.basemap === 'string' && json.basemap.trim() ? json.basemap.trim() : null,
  };
}

function showCatalog() {
  $('catalog').hidden = false;
  const list = $('udf-list');
  list.replaceChildren(...catalog.udfs.map((udf) => {
    const li = el('li', { attrs: { role: 'option', tabindex: 0, 'aria-selected': 'false' } },
      [el('span', { className: 'udf-item-name', text: udf.name, title: udf.description || udf.name }),
        el('span', { className: 'badges' }, badges(udf))]);
    li.dataset.udf = udf.name;
    return li;
  }));
  $('udf-list-empty').hidden = catalog.udfs.length > 0;
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('udf-list').addEventListener('click', (e) => {
    const li = e.target.closest('li[data-udf]');
    if (li) selectUdf(li.dataset.udf).catch(() => {});
  });
  $('udf-list').addEventListener('keydown', (e) => {
    const li = e.target.closest('li[data-udf]');
    if (li && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); selectUdf(li.dataset.udf).catch(() => {}); }
  });
  const form = $('params');
  form.addEventListener('input', onFormEdit);
  form.addEventListener('change', onFormEdit);
  form.addEventListener('submit', (e) => { e.preventDefault(); render(); });
  initColorBy((colorBy) => { state.colorBy = colorBy; });
  for (const button of document.querySelectorAll('button[data-copy]')) {
    button.addEventListener('click', () => copyText($(button.dataset.copy).textContent, button));
  }
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) return;
    storageSet(TOKEN_KEY, token);
    $('token-input').value = '';
    loadCatalog();
  });
  $('basemap-url').addEventListener('change', (e) => {
    storageSet(BASEMAP_KEY, e.target.value.trim());
    applyBasemap();
  });
  $('basemap-reset').addEventListener('click', () => {
    storageRemove(BASEMAP_KEY);
    $('basemap-url').value = effectiveBasemap();
    applyBasemap();
  });
  // A `#token=…` link pasted into an open tab does not reload the page.
  window.addEventListener('hashchange', () => { if (takeTokenFromHash()) loadCatalog(); });
  $('sign-out').addEventListener('click', () => {
    storageRemove(TOKEN_KEY);
    location.reload();
  });
}

window.fusedViewer = { map, selectUdf, setParam, state, catalog: null, render };
wire();
takeTokenFromHash();
loadCatalog();
