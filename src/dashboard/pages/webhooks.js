import { api, q } from '../api.js';
import { clear, emptyState, every, fmtNumber, h, pageHeader, refreshIndicator, stateBadge, statusBadge, timeCell } from '../ui.js';

const PAGE_SIZE = 25;
const REFRESH_MS = 5000;

const STATES = [
  ['', 'All states'],
  ['enabled', 'Enabled'],
  ['pending', 'Owing a callback'],
  ['failing', 'Failing (in backoff)'],
  ['disabled', 'Disabled'],
];

/** Filters live in the URL hash (#/webhooks?search=…&state=…&client=…&host=…&orcid=…), so a view can be bookmarked. */
function setHashParams(params) {
  const s = q(params);
  const next = `#/webhooks${s}`;
  if (location.hash !== next) history.replaceState(null, '', next);
}

export async function render(view, params) {
  // host and orcid: exactly one receiving host or one record (the overview's failures by host and the
  // records page link here), each shown as a removable filter.
  const filters = { search: params.search ?? '', state: params.state ?? '', client: params.client ?? '', host: params.host ?? '', orcid: params.orcid ?? '' };
  // Cursor of each page shown so far: [undefined (first), cursor of page 2, …].
  let cursors = [undefined];
  let nextCursor = null;

  const refresh = refreshIndicator(() => void load());
  const search = h('input', { type: 'search', class: 'input', placeholder: 'Search by ORCID iD, callback URL or client id', value: filters.search, 'aria-label': 'Search webhooks' });
  const state = h('select', { class: 'input', 'aria-label': 'Filter by state' }, STATES.map(([v, label]) => h('option', { value: v, selected: v === filters.state }, label)));
  const client = h('select', { class: 'input', 'aria-label': 'Filter by client' }, h('option', { value: '' }, 'All clients'));
  const exact = [['host', 'Host', 'Show every host'], ['orcid', 'Record', 'Show every record']].map(([key, label, title]) => {
    const el = h('span', { class: 'muted small', 'data-testid': `${key}-filter` });
    const show = () => clear(el, filters[key] ? [`${label} `, h('span', { class: 'mono' }, filters[key]), ' ',
      h('button', { type: 'button', class: 'btn btn-small', title, 'aria-label': title, onclick: () => { filters[key] = ''; show(); restart(); } }, '×')] : null);
    show();
    return el;
  });
  const tbody = h('tbody');
  const table = h('table', { class: 'table' },
    h('thead', {}, h('tr', {},
      h('th', { class: 'num col-wide' }, 'ID'), h('th', { class: 'url' }, 'Callback URL · ORCID iD'), h('th', { class: 'col-wide' }, 'Client'),
      h('th', {}, 'State'), h('th', { title: 'Status and time of the last callback tried, whatever its result' }, 'Last attempt'),
      h('th', { class: 'col-wide', title: 'The last callback answered 2xx' }, 'Last success'), h('th', { class: 'num col-wide' }, 'Failures'))),
    tbody);
  const status = h('div', { class: 'table-status' });
  const prev = h('button', { type: 'button', class: 'btn', onclick: () => go(-1) }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn', onclick: () => go(1) }, 'Next →');
  const pageLabel = h('span', { class: 'muted small' });
  const error = h('div');

  view.append(
    pageHeader('Webhooks', 'Every registered callback, its state and its last delivery.', refresh.el),
    h('div', { class: 'toolbar' }, search, state, client, ...exact),
    error,
    h('div', { class: 'card card-flush' }, h('div', { class: 'table-wrap' }, table), status,
      h('div', { class: 'pager' }, pageLabel, h('div', { class: 'pager-buttons' }, prev, next))),
  );

  api('GET', '/clients').then(({ clients }) => {
    for (const c of clients) client.append(h('option', { value: c.id, selected: c.id === filters.client }, `${c.name} (${c.id})`));
    if (filters.client && !clients.some((c) => c.id === filters.client)) client.append(h('option', { value: filters.client, selected: true }, filters.client));
  }).catch(() => undefined);

  function go(delta) {
    if (delta > 0 && nextCursor) cursors.push(nextCursor);
    if (delta < 0 && cursors.length > 1) cursors.pop();
    void load();
  }

  function restart() {
    cursors = [undefined];
    setHashParams(filters);
    void load();
  }

  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      filters.search = search.value.trim();
      restart();
    }, 300);
  });
  state.addEventListener('change', () => { filters.state = state.value; restart(); });
  client.addEventListener('change', () => { filters.client = client.value; restart(); });

  function row(w) {
    const href = `#/webhooks/${w.id}`;
    return h('tr', { class: 'row-link', dataset: { id: String(w.id) }, onclick: (e) => { if (!e.target.closest('a')) location.hash = href; } },
      // Public ids are long (wh_ + 32 hex): the list shows their start, the full id on hover and on the webhook's page.
      h('td', { class: 'num col-wide mono' }, h('a', { href, title: w.id }, `${String(w.id).slice(0, 11)}…`)),
      h('td', { class: 'url' },
        h('a', { class: 'mono cell-line', href, title: w.url }, w.url),
        h('span', { class: 'mono small muted cell-line' }, w.orcid)),
      h('td', { class: 'col-wide', title: w.client.id }, w.client.name ?? w.client.id),
      h('td', {}, stateBadge(w.state), w.state === 'disabled' && w.disabledReason ? h('div', { class: 'muted small' }, w.disabledReason) : null),
      h('td', { 'data-col': 'last-attempt' }, w.lastAttempt
        ? [h('span', { 'data-col': 'last-status' }, statusBadge(w.lastStatus)), ' ', h('span', { class: 'nowrap' }, timeCell(w.lastAttempt))]
        : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'nowrap col-wide', 'data-col': 'last-success' }, timeCell(w.lastSuccess)),
      h('td', { class: 'num col-wide' }, w.failedAttempts ? h('span', { class: 'text-bad' }, fmtNumber(w.failedAttempts)) : '0'),
    );
  }

  async function load() {
    const cursor = cursors[cursors.length - 1];
    try {
      const res = await api('GET', `/webhooks${q({ ...filters, cursor, limit: PAGE_SIZE })}`);
      clear(error);
      nextCursor = res.nextCursor;
      clear(tbody, res.webhooks.map(row));
      const filtered = filters.search || filters.state || filters.client || filters.host || filters.orcid;
      clear(status, res.webhooks.length ? null : emptyState(
        filtered ? 'No webhook matches' : 'No webhooks yet',
        filtered ? 'Search matches an exact ORCID iD or client id, or any part of the callback URL.' : 'Clients register them with PUT /{orcid}/webhook/{callback}.'));
      prev.disabled = cursors.length <= 1;
      next.disabled = !nextCursor;
      pageLabel.textContent = res.webhooks.length ? `Page ${cursors.length} · ${res.webhooks.length} shown` : '';
      refresh.mark();
    } catch (err) {
      clear(error, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not load webhooks: ${err.message}`));
    }
  }

  const stop = every(REFRESH_MS, load);
  return () => {
    stop();
    clearTimeout(debounce);
  };
}
