/* The typed parameter form (#params): one input per parameter of the selected UDF, named by the
 * parameter, read back into values and a query string. */

import { $, el, errorText, isNum } from './dom.js';

const SERVER_FILLED = ['bounds', 'bbox']; // filled by the server for tile UDFs

let fields = []; // [{param, kind, input, errorEl, wrapper, touched}]

const typeName = (t) => (typeof t === 'string' ? t : t && typeof t.type === 'string' ? t.type : 'any');

function typeLabel(p) {
  const base = typeName(p.type);
  if (base === 'list') {
    const items = p.items || (p.type && p.type.items);
    return items ? 'list[' + typeLabel({ type: items, items: items.items }) + ']' : 'list';
  }
  return base;
}

function inputKind(p) {
  const t = typeName(p.type);
  if (t === 'int' || t === 'float' || t === 'bool') return t;
  if (t === 'str') return Array.isArray(p.choices) && p.choices.length ? 'select' : 'str';
  return 'json';
}

function visibleParams(udf) {
  const params = Array.isArray(udf.params) ? udf.params : [];
  return params.filter((p) => p && typeof p.name === 'string' && p.name &&
    !(udf.kind === 'tile' && (SERVER_FILLED.includes(p.name) || typeName(p.type) === 'bounds')));
}

function makeInput(p, kind, id) {
  const d = p.default;
  const has = d !== undefined && d !== null;
  if (kind === 'bool') {
    return el('input', { attrs: { type: 'checkbox', id, name: p.name, checked: d === true } });
  }
  if (kind === 'int' || kind === 'float') {
    const input = el('input', { attrs: { type: 'number', id, name: p.name, step: kind === 'int' ? '1' : 'any',
      min: isNum(p.min) ? p.min : null, max: isNum(p.max) ? p.max : null } });
    if (has) input.value = String(d);
    return input;
  }
  if (kind === 'select') {
    const select = el('select', { attrs: { id, name: p.name } });
    const choices = p.choices.map(String);
    if (!has || !choices.includes(String(d))) select.appendChild(el('option', { text: has ? '' : '(default)', attrs: { value: '' } }));
    for (const c of choices) select.appendChild(el('option', { text: c, attrs: { value: c } }));
    select.value = has && choices.includes(String(d)) ? String(d) : '';
    return select;
  }
  if (kind === 'str') {
    const input = el('input', { attrs: { type: 'text', id, name: p.name, spellcheck: 'false' } });
    if (has) input.value = String(d);
    return input;
  }
  const t = typeName(p.type);
  const placeholder = t === 'list' ? '[ … ]' : t === 'object' ? '{ … }' : t === 'bounds' ? '[west, south, east, north]' : 'JSON';
  const area = el('textarea', { attrs: { id, name: p.name, rows: 2, spellcheck: 'false', placeholder } });
  if (d !== undefined) area.value = has ? JSON.stringify(d) : '';
  return area;
}

/** Replaces the form with the inputs of `udf`'s parameters (those the server fills are left out). */
export function buildForm(udf) {
  const form = $('params');
  form.replaceChildren();
  fields = visibleParams(udf).map((p, i) => {
    const kind = inputKind(p);
    const id = 'param-' + i;
    const input = makeInput(p, kind, id);
    const label = el('label', { className: 'field-label', attrs: { for: id } }, [
      el('span', { text: p.name }),
      el('span', { className: 'field-type', text: typeLabel(p) +
        (isNum(p.min) || isNum(p.max) ? ' [' + (isNum(p.min) ? p.min : '') + '…' + (isNum(p.max) ? p.max : '') + ']' : '') }),
      p.required ? el('span', { className: 'required', text: '*', title: 'required' }) : null,
    ]);
    const errorEl = el('div', { className: 'inline-error', attrs: { hidden: true } });
    const desc = p.description ? el('div', { className: 'field-desc', text: p.description }) : null;
    const wrapper = kind === 'bool'
      ? el('div', { className: 'field checkbox' }, [el('label', { className: 'field-label', attrs: { for: id } },
        [input, el('span', { text: p.name }), el('span', { className: 'field-type', text: 'bool' })]), desc, errorEl])
      : el('div', { className: 'field' }, [label, input, desc, errorEl]);
    wrapper.dataset.param = p.name;
    form.appendChild(wrapper);
    return { param: p, kind, input, errorEl, wrapper, touched: false };
  });
  $('params-empty').hidden = fields.length > 0;
}

function setFieldError(f, message) {
  f.errorEl.textContent = message || '';
  f.errorEl.hidden = !message;
  f.wrapper.classList.toggle('invalid', !!message);
}

/** Reads the form: {ok, values (parsed), qs (query string of the non-empty ones)}. */
export function collectParams() {
  const values = {};
  const pairs = [];
  let ok = true;
  for (const f of fields) {
    const { param: p, kind, input } = f;
    let message = '';
    let text = null;
    if (kind === 'bool') {
      if (typeof p.default === 'boolean' || p.required || f.touched) {
        values[p.name] = input.checked;
        text = input.checked ? 'true' : 'false';
      }
    } else if (kind === 'int' || kind === 'float') {
      const s = input.value.trim();
      if (input.validity && input.validity.badInput) message = 'Not a number.';
      else if (s !== '') {
        const n = Number(s);
        if (!Number.isFinite(n)) message = 'Not a number.';
        else if (kind === 'int' && !Number.isInteger(n)) message = 'Must be a whole number.';
        else { values[p.name] = n; text = s; }
      }
    } else if (kind === 'json') {
      const s = input.value.trim();
      if (s !== '') {
        try {
          const v = JSON.parse(s);
          values[p.name] = v;
          text = JSON.stringify(v);
        } catch (e) { message = 'Invalid JSON: ' + errorText(e); }
      }
    } else if (input.value !== '') {
      values[p.name] = input.value;
      text = input.value;
    }
    setFieldError(f, message);
    if (message) ok = false;
    if (text !== null) pairs.push([p.name, text]);
  }
  return { ok, values, qs: new URLSearchParams(pairs).toString() };
}

/** Sets the input of parameter `name`; false when the form has no such parameter. */
export function setFieldValue(name, value) {
  const f = fields.find((x) => x.param.name === name);
  if (!f) return false;
  f.touched = true;
  if (f.kind === 'bool') f.input.checked = value === true || value === 'true';
  else if (value === null || value === undefined) f.input.value = '';
  else if (f.kind === 'json' && typeof value !== 'string') f.input.value = JSON.stringify(value);
  else f.input.value = String(value);
  return true;
}

/** Remembers that the user edited `input` (an unset checkbox is then sent as false). */
export function markTouched(input) {
  const f = fields.find((x) => x.input === input);
  if (f) f.touched = true;
}
