/* The "Share" panel: a curl command (#curl) and the shared or TileJSON URL (#share-url) of the
 * selected UDF with the form's parameters, and their Copy buttons. */

import { $, el, shellQuote, withQuery } from './dom.js';
import { runBase, tileUrl, fileUrl } from './api.js';
import { centreTile } from './map.js';

/** Fills #curl and #share-url for `udf` and query string `qs`; `tileKind` is what a probe told
 * ('raster' gives PNG, anything else MVT). */
export function updateCopyFields(udf, qs, tileKind) {
  const area = $('copy-area');
  area.hidden = !udf.token;
  if (!udf.token) {
    $('curl').textContent = '';
    $('share-url').textContent = '';
    return;
  }
  if (udf.kind === 'tile') {
    const t = centreTile(udf);
    const ext = tileKind === 'raster' ? 'png' : 'mvt'; // mvt until a probe says raster
    $('curl').textContent = 'curl -sS ' + shellQuote(tileUrl(udf, t, ext, qs)) +
      ' -o tile-' + t.z + '-' + t.x + '-' + t.y + '.' + ext;
    $('share-url').textContent = withQuery(runBase(udf) + '/tiles.json', qs);
    $('share-label').textContent = 'TileJSON URL';
  } else {
    $('curl').textContent = 'curl -sS ' + shellQuote(fileUrl(udf, 'json', qs));
    $('share-url').textContent = withQuery(runBase(udf), qs);
    $('share-label').textContent = 'Shared URL';
  }
}

/** Copies `text` to the clipboard and says so on `button` for a moment. */
export async function copyText(text, button) {
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch (e) { /* fall back below */ }
  if (!ok) {
    const area = el('textarea', { attrs: { readonly: true, style: 'position:fixed;top:-1000px;opacity:0' } });
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    area.remove();
  }
  const label = button.textContent;
  button.textContent = ok ? 'Copied' : 'Copy failed';
  setTimeout(() => { button.textContent = label; }, 1200);
}
