import { api } from '../api.js';
import { clear, every, fmtRelative, h, pageHeader, refreshIndicator } from '../ui.js';

/** The upstream poller (serve --upstream): state, cursor, lag, last error, next poll. */
const REFRESH_MS = 5000;

const TONES = { idle: 'ok', polling: 'pending', following: 'pending', starting: 'pending', backoff: 'bad' };

function row(label, value, testid) {
  return h('div', {}, h('dt', {}, label), h('dd', { 'data-testid': testid }, value ?? '—'));
}

function when(iso) {
  return iso ? h('span', { title: iso }, `${fmtRelative(iso)} (${iso})`) : null;
}

export async function render(view) {
  const refresh = refreshIndicator(() => void load());
  const body = h('section', { class: 'card', 'aria-busy': 'true' });
  view.append(pageHeader('Upstream', 'Changes on the watched ORCID registry become callbacks; refreshes every 5 seconds.', refresh.el), body);

  async function load() {
    try {
      const u = await api('GET', '/upstream');
      if (!u.configured && u.state === 'never ran') {
        clear(body, h('p', {}, 'This server does not watch an upstream registry. Start it with ',
          h('code', {}, 'serve --upstream orcid --upstream-client-id … --upstream-client-secret …'), ' (see the README, “Watching orcid.org”).'));
      } else {
        clear(body, h('dl', { class: 'details' },
          row('State', h('span', { class: `badge badge-${TONES[u.state] ?? 'disabled'}` }, u.state), 'upstream-state'),
          row('Upstream', u.upstream, 'upstream-url'),
          row('Polling process', u.leader ? `${u.leader}` : 'none', 'upstream-leader'),
          row('Cursor', u.cursor, 'upstream-cursor'),
          row('Lag', u.lagSeconds === null ? null : `${u.lagSeconds} s`, 'upstream-lag'),
          row('Last success', when(u.lastSuccess), 'upstream-last-success'),
          row('Last error', u.lastError ? h('span', {}, h('strong', {}, u.lastError), h('br'), when(u.lastErrorAt)) : 'none', 'upstream-last-error'),
          row('Next poll', when(u.nextPoll), 'upstream-next-poll'),
          row('Records changed', u.recordsChanged === null ? null : String(u.recordsChanged), 'upstream-changed')));
      }
      body.setAttribute('aria-busy', 'false');
      refresh.mark();
    } catch (err) {
      clear(body, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not load the upstream state: ${err.message}`));
    }
  }

  return every(REFRESH_MS, load);
}
