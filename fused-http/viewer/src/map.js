/* The MapLibre map: its creation, the 'udf' source and its layers (vector, raster or GeoJSON),
 * the basemap under them, feature popups, the tile under the centre, and waiting for idle. */

import { $, el, errorText, isNum, clamp, cellText } from './dom.js';

const SOURCE_ID = 'udf';
const LAYER_IDS = ['udf-fill', 'udf-line', 'udf-circle', 'udf-raster'];
const VECTOR_LAYER_IDS = ['udf-fill', 'udf-line', 'udf-circle'];
const IDLE_TIMEOUT_MS = 20000;
const FILL = '#2563eb';
const LINE = '#1d4ed8';
const POLYGONS = ['in', ['geometry-type'], ['literal', ['Polygon', 'MultiPolygon']]];
const POINTS = ['in', ['geometry-type'], ['literal', ['Point', 'MultiPoint']]];
/** The single-colour style of the vector layers. */
const PLAIN_COLORS = { fill: FILL, line: LINE, circle: FILL, fillOpacity: 0.3 };

let map = null;
let mapReady = Promise.resolve();
let sourceKey = null;     // what the 'udf' source currently shows
let sourceTemplate = null; // its tile URL template, when it is a tile source
let popup = null;
let colors = PLAIN_COLORS; // paint values of the vector layers (see setVectorColors)
let handlers = {};

/** Creates the map in #map; null when MapLibre is missing or cannot start (a message says so).
 * `on.tileError(err)` hears about failed tiles of the current 'udf' source, `on.moveEnd()`
 * about the view changing. */
export function initMap(on) {
  handlers = on || {};
  map = createMap();
  mapReady = new Promise((resolve) => {
    if (!map) return resolve();
    map.on('load', resolve);
    setTimeout(resolve, 10000); // never block the page on a map that does not load
  });
  return map;
}

/** Resolves once the map's style has loaded (or at once without a map). */
export const whenMapReady = () => mapReady;

function createMap() {
  const container = $('map');
  if (!window.maplibregl) {
    return mapFailed(container, 'No map: MapLibre GL was not bundled when this server was built '
      + '(npm was missing or FUSED_VIEWER_NO_NPM was set). Install Node.js with npm and rebuild.');
  }
  try {
    const m = new window.maplibregl.Map({
      container,
      style: {
        version: 8,
        sources: {},
        layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#eef0f3' } }],
      },
      center: [0, 20],
      zoom: 2,
      // MapLibre 5 reads it from canvasContextAttributes; kept at top level for older versions.
      preserveDrawingBuffer: true,
      canvasContextAttributes: { preserveDrawingBuffer: true },
    });
    m.addControl(new window.maplibregl.NavigationControl({ showCompass: false }), 'top-right');
    m.on('error', onMapError);
    m.on('moveend', () => { if (handlers.moveEnd) handlers.moveEnd(); });
    m.on('click', onMapClick);
    m.on('mousemove', onMapHover);
    return m;
  } catch (e) {
    return mapFailed(container, 'The map could not start (WebGL unavailable?): ' + errorText(e));
  }
}

function mapFailed(container, message) {
  container.appendChild(el('div', { className: 'map-failed', text: message }));
  return null;
}

// ---------------------------------------------------------------- the 'udf' source and layers

function vectorLayers(sourceLayer) {
  const common = { source: SOURCE_ID };
  if (sourceLayer !== null) common['source-layer'] = sourceLayer;
  return [
    Object.assign({ id: 'udf-fill', type: 'fill', filter: POLYGONS,
      paint: { 'fill-color': colors.fill, 'fill-opacity': colors.fillOpacity } }, common),
    Object.assign({ id: 'udf-line', type: 'line', filter: ['!', POINTS],
      paint: { 'line-color': colors.line, 'line-width': 1.25 } }, common),
    Object.assign({ id: 'udf-circle', type: 'circle', filter: POINTS,
      paint: { 'circle-color': colors.circle, 'circle-radius': 4, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 1 } }, common),
  ];
}

/** Paints the vector layers (now and when they are re-created) with `c` = {fill, line, circle,
 * fillOpacity} (colours may be expressions); null: the single-colour style. */
export function setVectorColors(c) {
  colors = c || PLAIN_COLORS;
  if (!map) return;
  try {
    if (map.getLayer('udf-fill')) {
      map.setPaintProperty('udf-fill', 'fill-color', colors.fill);
      map.setPaintProperty('udf-fill', 'fill-opacity', colors.fillOpacity);
    }
    if (map.getLayer('udf-line')) map.setPaintProperty('udf-line', 'line-color', colors.line);
    if (map.getLayer('udf-circle')) map.setPaintProperty('udf-circle', 'circle-color', colors.circle);
  } catch (e) { console.warn('styling the layers failed', e); }
}

/** Whether the map shows vector features (tiles or GeoJSON) of the UDF. */
export const hasVectorLayers = () => !!map && VECTOR_LAYER_IDS.some((id) => map.getLayer(id));

/** The properties of the 'udf' source's loaded features (of `sourceLayer` for vector tiles). */
export function sourceFeatureProperties(sourceLayer) {
  if (!hasVectorLayers() || !map.getSource(SOURCE_ID)) return [];
  try {
    const opts = sourceLayer !== null && sourceKey !== 'geojson' ? { sourceLayer } : undefined;
    return map.querySourceFeatures(SOURCE_ID, opts).map((f) => f.properties || {});
  } catch (e) {
    console.warn('reading the features failed', e);
    return [];
  }
}

/** What the 'udf' source shows (changes when its URL, kind or data change), or null. */
export const currentSourceKey = () => sourceKey;

/** Removes the UDF's layers and source (and any open popup). */
export function clearMapOutput() {
  sourceKey = null;
  sourceTemplate = null;
  if (popup) { popup.remove(); popup = null; }
  if (!map) return;
  try {
    for (const id of LAYER_IDS) if (map.getLayer(id)) map.removeLayer(id);
    if (map.getSource(SOURCE_ID)) map.removeSource(SOURCE_ID);
  } catch (e) { console.warn('clearing the map failed', e); }
}

/** Points the 'udf' source at a tile URL template; returns true when it changed. */
export function setTileSource(udf, kind, template, sourceLayer) {
  if (!map) return false;
  const minzoom = isNum(udf.minzoom) ? clamp(Math.floor(udf.minzoom), 0, 24) : 0;
  const maxzoom = isNum(udf.maxzoom) ? clamp(Math.floor(udf.maxzoom), minzoom, 30) : 22;
  const key = [kind, template, sourceLayer, minzoom, maxzoom].join('|');
  if (key === sourceKey && map.getSource(SOURCE_ID)) return false;
  clearMapOutput();
  if (kind === 'raster') {
    map.addSource(SOURCE_ID, { type: 'raster', tiles: [template], tileSize: 256, minzoom, maxzoom });
    map.addLayer({ id: 'udf-raster', type: 'raster', source: SOURCE_ID, paint: { 'raster-fade-duration': 0 } });
  } else {
    map.addSource(SOURCE_ID, { type: 'vector', tiles: [template], minzoom, maxzoom });
    for (const layer of vectorLayers(sourceLayer)) map.addLayer(layer);
  }
  sourceKey = key;
  sourceTemplate = template;
  return true;
}

/** Shows GeoJSON on the map and zooms to it. */
export function setGeoJsonSource(fc) {
  if (!map) return;
  clearMapOutput();
  map.addSource(SOURCE_ID, { type: 'geojson', data: fc });
  for (const layer of vectorLayers(null)) map.addLayer(layer);
  sourceKey = 'geojson';
  const b = geoBounds(fc);
  if (b) map.fitBounds(b, { padding: 40, maxZoom: 15, duration: 0 });
}

/** [[west, south], [east, north]] of all coordinates, or null. */
function geoBounds(fc) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  const visit = (c) => {
    if (!Array.isArray(c)) return;
    if (isNum(c[0]) && isNum(c[1])) {
      b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
      b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
    } else c.forEach(visit);
  };
  const visitGeom = (g) => {
    if (!g || typeof g !== 'object') return;
    if (Array.isArray(g.geometries)) g.geometries.forEach(visitGeom);
    else visit(g.coordinates);
  };
  fc.features.forEach((f) => visitGeom(f.geometry));
  if (!b.every(Number.isFinite)) return null;
  return [[clamp(b[0], -180, 180), clamp(b[1], -85, 85)], [clamp(b[2], -180, 180), clamp(b[3], -85, 85)]];
}

/** Resolves when the map has drawn everything it is loading (or after a timeout). */
export function waitForIdle() {
  if (!map) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); map.off('idle', done); resolve(); };
    const timer = setTimeout(done, IDLE_TIMEOUT_MS);
    map.on('idle', done);
    map.triggerRepaint();
  });
}

/** (Re)adds the basemap raster (an XYZ template) under the UDF layers; '' removes it. Call once
 * the map is ready. */
export function setBasemap(url) {
  if (!map) return;
  try {
    if (map.getLayer('basemap')) map.removeLayer('basemap');
    if (map.getSource('basemap')) map.removeSource('basemap');
    if (!url) return;
    map.addSource('basemap', { type: 'raster', tiles: [url], tileSize: 256, maxzoom: 19 });
    map.addLayer({ id: 'basemap', type: 'raster', source: 'basemap' }, LAYER_IDS.find((id) => map.getLayer(id)));
  } catch (e) {
    console.warn('basemap', e);
  }
}

function onMapError(e) {
  if (!e || e.sourceId !== SOURCE_ID) {
    if (e && e.sourceId !== 'basemap') console.warn('map error', e && e.error);
    return;
  }
  const err = e.error || {};
  if (err.name === 'AbortError') return;
  // Errors of a source that was replaced since (or removed) are old news.
  const tiles = e.source && Array.isArray(e.source.tiles) ? e.source.tiles[0] : null;
  if (tiles === null ? sourceKey === null : tiles !== sourceTemplate) return;
  if (handlers.tileError) handlers.tileError(err);
}

// ---------------------------------------------------------------- popups

function queryableLayers() {
  return map ? VECTOR_LAYER_IDS.filter((id) => map.getLayer(id)) : [];
}

function onMapHover(e) {
  const layers = queryableLayers();
  const hit = layers.length > 0 && map.queryRenderedFeatures(e.point, { layers }).length > 0;
  map.getCanvas().style.cursor = hit ? 'pointer' : '';
}

function onMapClick(e) {
  const layers = queryableLayers();
  if (!layers.length) return;
  const features = map.queryRenderedFeatures(e.point, { layers });
  if (!features.length) return;
  if (popup) popup.remove();
  popup = new window.maplibregl.Popup({ maxWidth: '340px' })
    .setLngLat(e.lngLat)
    .setDOMContent(propertiesTable(features[0].properties || {}, features.length))
    .addTo(map);
}

function propertiesTable(props, count) {
  const rows = Object.entries(props).map(([k, v]) =>
    el('tr', {}, [el('th', { text: k }), el('td', { text: cellText(v) })]));
  const box = el('div', {}, [
    rows.length ? el('table', { className: 'popup-table' }, [el('tbody', {}, rows)])
      : el('div', { className: 'muted', text: 'No properties' }),
  ]);
  if (count > 1) box.appendChild(el('div', { className: 'popup-more', text: (count - 1) + ' more feature(s) here' }));
  return box;
}

// ---------------------------------------------------------------- tiles

/** The XYZ tile holding a point. */
function tileAt(lng, lat, z) {
  const n = Math.pow(2, z);
  const lon = ((((lng + 180) % 360) + 360) % 360) - 180;
  const rad = clamp(lat, -85.05112878, 85.05112878) * Math.PI / 180;
  const x = Math.floor((lon + 180) / 360 * n);
  const y = Math.floor((1 - Math.log(Math.tan(rad) + 1 / Math.cos(rad)) / Math.PI) / 2 * n);
  return { z, x: clamp(x, 0, n - 1), y: clamp(y, 0, n - 1) };
}

/** The current zoom as a tile zoom, clamped to the UDF's zoom range. */
function tileZoom(udf) {
  const zoom = map ? map.getZoom() : 2;
  const lo = isNum(udf.minzoom) ? Math.max(0, Math.floor(udf.minzoom)) : 0;
  const hi = isNum(udf.maxzoom) ? Math.max(lo, Math.floor(udf.maxzoom)) : 30;
  return clamp(Math.floor(zoom), lo, hi);
}

/** The tile under the map centre at the current zoom, clamped to the UDF's zoom range. */
export function centreTile(udf) {
  const c = map ? map.getCenter() : { lng: 0, lat: 20 };
  return tileAt(c.lng, c.lat, tileZoom(udf));
}

/** The tiles under the view's four corners (other places to look when the centre is empty). */
export function cornerTiles(udf) {
  if (!map) return [];
  const b = map.getBounds();
  const z = tileZoom(udf);
  const seen = new Set();
  return [[b.getWest(), b.getNorth()], [b.getEast(), b.getNorth()],
    [b.getWest(), b.getSouth()], [b.getEast(), b.getSouth()]]
    .map(([lng, lat]) => tileAt(lng, lat, z))
    .filter((t) => { const k = t.x + '/' + t.y; return !seen.has(k) && seen.add(k); });
}
