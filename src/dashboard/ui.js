// Small DOM helpers: elements are built with textContent only, so server data is never parsed as HTML.

/** h('div', { class: 'x', onclick: fn }, child, 'text', [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// --- Formatting ---------------------------------------------------------------------------------

const dateFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const numFmt = new Intl.NumberFormat();

export const fmtNumber = (n) => (n === null || n === undefined ? '—' : numFmt.format(n));
export const fmtDate = (iso) => (iso ? dateFmt.format(new Date(iso)) : '—');
const fmtClock = (d = new Date()) => timeFmt.format(d);

/**
 * A duration in the unit that fits it as rounded (59,960 ms is "1.0 min", not "60.0 s"): ms, s,
 * min, then hours (an oldest owed notification of two hours is "2.0 h", not "120.0 min").
 */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  if (ms < 9_995) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_597_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A share: 99.96 % is ">99.9%", never "100.0%" (which says nothing failed), and 0.04 % is "<0.1%". */
export function fmtPercent(r) {
  if (r === null || r === undefined) return '—';
  const p = r * 100;
  if (p === 100 || p === 0) return `${p.toFixed(0)}%`;
  if (p > 99.9 && p < 100) return '>99.9%';
  if (p > 0 && p < 0.05) return '<0.1%';
  return `${p.toFixed(1)}%`;
}

/** "12 s ago", "in 3 min" */
export function fmtRelative(iso, now = Date.now()) {
  if (!iso) return '—';
  const d = new Date(iso).getTime() - now;
  const a = Math.abs(d);
  let s;
  if (a < 5_000) return d <= 0 ? 'just now' : 'in a moment';
  if (a < 60_000) s = `${Math.round(a / 1000)} s`;
  else if (a < 3_600_000) s = `${Math.round(a / 60_000)} min`;
  else if (a < 86_400_000) s = `${Math.round(a / 3_600_000)} h`;
  else s = `${Math.round(a / 86_400_000)} d`;
  return d < 0 ? `${s} ago` : `in ${s}`;
}

/** A time shown relative, with the exact time on hover. */
export const timeCell = (iso) => (iso ? h('time', { datetime: iso, title: fmtDate(iso) }, fmtRelative(iso)) : h('span', { class: 'muted' }, '—'));

// --- Pieces -------------------------------------------------------------------------------------

const STATE_LABEL = { ok: 'OK', pending: 'Pending', failing: 'Failing', disabled: 'Disabled' };
const STATE_HELP = {
  ok: 'Enabled and owes nothing',
  pending: 'Owes a callback that is due (or about to be)',
  failing: 'Owes a callback and is in backoff after failed tries',
  disabled: 'Stopped: no callbacks until re-enabled',
};

export const stateBadge = (state) => h('span', { class: `badge badge-${state}`, title: STATE_HELP[state] ?? '' }, STATE_LABEL[state] ?? state);

/**
 * A status code, or an error without one ("timeout: no complete response within 20000 ms"): the
 * badge holds its class ("timeout"), the whole text is on hover. A badge does not wrap, so the whole
 * text in it widened tables and pages.
 */
export function statusBadge(status) {
  if (status === null || status === undefined) return h('span', { class: 'muted' }, '—');
  const text = String(status);
  const code = Number(status);
  const isCode = /^\d+$/.test(text);
  const ok = isCode && code >= 200 && code < 300;
  const label = isCode ? text : text.split(':')[0];
  return h('span', { class: `badge ${ok ? 'badge-ok' : 'badge-bad'}`, title: ok ? 'Success' : label === text ? 'Failure' : text }, label);
}

/** The whole error of a status that is not a code, to show beside its badge (null for a code). */
export const statusDetail = (status) => (status !== null && status !== undefined && !/^\d+$/.test(String(status)) && String(status).includes(':')
  ? h('div', { class: 'muted small wrap-anywhere' }, String(status)) : null);

export function copyButton(text, label = 'Copy') {
  const b = h('button', { type: 'button', class: 'btn btn-small', onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Select and copy';
    }
    setTimeout(() => { b.textContent = label; }, 1500);
  } }, label);
  return b;
}

export function errorBox(err) {
  return h('div', { class: 'alert alert-error', role: 'alert' }, err.message ?? String(err));
}

export function emptyState(title, text) {
  return h('div', { class: 'empty' }, h('strong', {}, title), text ? h('p', {}, text) : null);
}

// --- Toasts and confirmation --------------------------------------------------------------------

export function toast(message, kind = 'success') {
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  document.getElementById('toasts').append(el);
  setTimeout(() => el.classList.add('toast-out'), kind === 'error' ? 7000 : 4000);
  setTimeout(() => el.remove(), kind === 'error' ? 7400 : 4400);
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog({ title, message, confirm }) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-message').textContent = message;
  document.getElementById('confirm-ok').textContent = confirm;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

/** Runs fn with the button disabled and a busy label; errors become a toast. */
export async function busy(button, label, fn) {
  const old = button.textContent;
  button.disabled = true;
  button.textContent = label;
  try {
    return await fn();
  } catch (err) {
    toast(err.message, 'error');
    return undefined;
  } finally {
    button.disabled = false;
    button.textContent = old;
  }
}

export function pageHeader(title, subtitle, ...actions) {
  return h('header', { class: 'page-header' },
    h('div', {}, h('h1', {}, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

/**
 * Calls fn now and every intervalMs while the tab is visible; returns a stop function. A failed
 * refresh is shown by fn itself and does not stop the timer.
 */
export function every(intervalMs, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (document.visibilityState === 'visible') await fn();
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** "Updated 12:00:01" with a refresh button. */
export function refreshIndicator(onRefresh) {
  const stamp = h('span', { class: 'muted small', 'aria-live': 'off' }, '');
  const button = h('button', { type: 'button', class: 'btn btn-small', title: 'Refresh now', onclick: () => onRefresh() }, 'Refresh');
  return {
    el: h('div', { class: 'refresh' }, stamp, button),
    mark: () => { stamp.textContent = `Updated ${fmtClock()}`; },
  };
}
