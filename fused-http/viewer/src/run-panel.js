/* The "Last run" panel: status line (#run-status), error (#error) and logs (#logs). */

import { $, el } from './dom.js';

/** Shows `message` in #error, or hides it when empty. */
export function showError(message) {
  const box = $('error');
  box.textContent = message || '';
  box.hidden = !message;
  if (message) $('last-run').hidden = false;
}

export function showPending() {
  $('last-run').hidden = false;
  $('run-status').replaceChildren(el('span', { className: 'pending', text: 'Running…' }));
}

/** Shows a run (as api.request describes it): status, timing, cache, logs and error. */
export function showRun(run) {
  const status = run.status === null ? 'no response' : 'HTTP ' + run.status + (run.statusText ? ' ' + run.statusText : '');
  const parts = [el('span', { className: run.ok ? 'ok' : 'fail', text: status })];
  if (run.ms !== null) parts.push(el('span', { text: run.ms + ' ms' }));
  if (run.cache) parts.push(el('span', { text: 'x-cache: ' + run.cache }));
  if (run.contentType) parts.push(el('span', { text: run.contentType }));
  $('run-status').replaceChildren(...parts);
  showError(run.error);
  showLogs(run.metadata);
}

function showLogs(meta) {
  const logs = $('logs');
  logs.replaceChildren();
  const out = meta && meta.stdout ? String(meta.stdout) : '';
  const err = meta && meta.stderr ? String(meta.stderr) : '';
  if (out) logs.append(el('div', { className: 'log-label', text: 'stdout' }), el('pre', { className: 'stdout', text: out }));
  if (err) logs.append(el('div', { className: 'log-label', text: 'stderr' }), el('pre', { className: 'stderr', text: err }));
  if (!out && !err) logs.append(el('div', { className: 'log-label muted', text: meta ? 'No output on stdout/stderr.' : 'No run metadata.' }));
}

/** Empties the status line, logs and error. */
export function clearRunPanel() {
  $('run-status').replaceChildren();
  $('logs').replaceChildren();
  showError('');
}
