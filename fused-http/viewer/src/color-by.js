/* "Colour by" (#color-by): colours the vector features by a numeric property with a sequential,
 * colour-blind-friendly ramp between the smallest and largest value seen, with a legend. The
 * values seen add up while the view moves over the same source, so colours stay put when
 * panning; a new source (other parameters) or another UDF starts over. */

import { $ } from './dom.js';
import { hasVectorLayers, sourceFeatureProperties, currentSourceKey, setVectorColors } from './map.js';

/** Viridis at 0, .25, .5, .75, 1. */
const RAMP = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];
const NO_VALUE = '#9ca3af'; // features without a number in the property
const COLORED_FILL_OPACITY = 0.6;

let stats = new Map(); // property -> {min, max, numeric}
let statsKey = null;   // the source the stats were read from
let chosen = null;     // the user's pick ('' = none); null: the default
let onChange = () => {};

/** Wires the select; `changed(colorBy)` hears about the user's picks (see refreshColorBy). */
export function initColorBy(changed) {
  onChange = changed || onChange;
  $('color-by').addEventListener('change', (e) => {
    chosen = e.target.value;
    onChange(apply());
  });
}

/** Forgets the values seen and the user's pick (another UDF), back to the single colour. */
export function resetColorBy() {
  stats = new Map();
  statsKey = null;
  chosen = null;
  $('style').hidden = true;
  setVectorColors(null);
}

/** Reads the loaded features' properties (of `sourceLayer` for vector tiles) after a render,
 * offers their numeric properties and colours by the picked one. Returns what is applied:
 * {property, min, max} or null. */
export function refreshColorBy(sourceLayer) {
  if (!hasVectorLayers()) {
    stats = new Map();
    statsKey = null;
    $('style').hidden = true;
    setVectorColors(null);
    return null;
  }
  const key = currentSourceKey();
  if (key !== statsKey) {
    stats = new Map();
    statsKey = key;
  }
  for (const props of sourceFeatureProperties(sourceLayer)) {
    for (const [k, v] of Object.entries(props)) {
      let s = stats.get(k);
      if (!s) stats.set(k, s = { min: Infinity, max: -Infinity, numeric: true });
      if (typeof v === 'number' && Number.isFinite(v)) {
        s.min = Math.min(s.min, v);
        s.max = Math.max(s.max, v);
      } else if (v !== null && v !== undefined) {
        s.numeric = false;
      }
    }
  }
  const names = numericProperties();
  const select = $('color-by');
  select.replaceChildren(new Option('none', ''), ...names.map((n) => new Option(n, n)));
  select.disabled = names.length === 0;
  $('style').hidden = false;
  return apply();
}

function numericProperties() {
  return [...stats].filter(([, s]) => s.numeric && s.min <= s.max).map(([k]) => k);
}

/** The property to colour by: the user's pick while it is offered, else `value`, else the first. */
function property(names) {
  if (chosen === '' || (chosen !== null && names.includes(chosen))) return chosen;
  return names.includes('value') ? 'value' : names[0] || '';
}

function apply() {
  const names = numericProperties();
  const prop = property(names);
  const select = $('color-by');
  select.value = prop;
  const legend = $('color-legend');
  if (!prop) {
    legend.hidden = true;
    setVectorColors(null);
    return null;
  }
  const { min, max } = stats.get(prop);
  const color = rampExpression(prop, min, max);
  setVectorColors({ fill: color, line: color, circle: color, fillOpacity: COLORED_FILL_OPACITY });
  $('color-legend-ramp').style.background = 'linear-gradient(to right, ' + RAMP.join(', ') + ')';
  $('color-legend-min').textContent = formatNumber(min);
  $('color-legend-max').textContent = formatNumber(max);
  legend.hidden = false;
  return { property: prop, min, max };
}

/** A MapLibre colour expression: `prop` from min to max along the ramp; grey without a number. */
function rampExpression(prop, min, max) {
  const value = ['get', prop];
  const stops = RAMP.map((c, i) => [min + (max - min) * i / (RAMP.length - 1), c]);
  const ascending = stops.every(([v], i) => i === 0 || v > stops[i - 1][0]);
  const ramp = ascending
    ? ['interpolate', ['linear'], ['to-number', value]].concat(...stops)
    : RAMP[Math.floor(RAMP.length / 2)]; // one value (or too close to tell apart): the middle
  return ['case', ['==', ['typeof', value], 'number'], ramp, NO_VALUE];
}

function formatNumber(v) {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}
