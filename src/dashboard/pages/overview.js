import { api, q } from '../api.js';
import { autoResize, latencyChart, throughputChart, updateCharts } from '../charts.js';
import { clear, emptyState, every, fmtDate, fmtMs, fmtNumber, fmtPercent, h, pageHeader, refreshIndicator } from '../ui.js';

const REFRESH_MS = 5000;

function stat(label, value, sub, { tone, href, testid } = {}) {
  const body = [h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value', 'data-testid': testid }, value), sub ? h('div', { class: 'stat-sub' }, sub) : null];
  return href ? h('a', { class: `stat stat-link ${tone ? `stat-${tone}` : ''}`, href }, body) : h('div', { class: `stat ${tone ? `stat-${tone}` : ''}` }, body);
}

export async function render(view) {
  const refresh = refreshIndicator(() => void load());
  const stats = h('div', { class: 'stats', 'aria-busy': 'true' });
  const error = h('div');
  const throughputEl = h('div', { class: 'chart' });
  const latencyEl = h('div', { class: 'chart' });
  const byHost = h('div', { 'data-testid': 'failures-by-host' });
  const byClient = h('div', { 'data-testid': 'failures-by-client' });
  view.append(
    pageHeader('Overview', 'Delivery over the last hour; refreshes every 5 seconds.', refresh.el),
    error,
    stats,
    h('div', { class: 'charts' },
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Throughput'), h('span', { class: 'muted small' }, 'callbacks per minute · red: failed')), throughputEl),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Change-to-callback latency'), h('span', { class: 'muted small' }, 'p50 and p95 per minute, successful callbacks')), latencyEl)),
    h('div', { class: 'charts breakdowns' },
      h('section', { class: 'card card-flush' }, h('div', { class: 'card-head card-head-pad' }, h('h2', {}, 'Failures by receiving host'), h('span', { class: 'muted small' }, 'last hour')), byHost),
      h('section', { class: 'card card-flush' }, h('div', { class: 'card-head card-head-pad' }, h('h2', {}, 'Failures by client'), h('span', { class: 'muted small' }, 'last hour')), byClient)),
  );

  /** Hosts or clients with failed attempts, worst first, each linking to its webhooks. */
  function failureTable(rows, label, cell) {
    if (!rows.length) return emptyState('No failures', 'Every callback of the last hour was answered 2xx.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, label), h('th', { class: 'num' }, 'Failed'), h('th', { class: 'num' }, 'Attempts'), h('th', { class: 'num' }, 'Failed share'))),
      h('tbody', {}, rows.map((r) => h('tr', {},
        h('td', { class: 'wrap-anywhere' }, cell(r)),
        h('td', { class: 'num' }, h('span', { class: 'text-bad' }, fmtNumber(r.failures))),
        h('td', { class: 'num' }, fmtNumber(r.attempts)),
        h('td', { class: 'num' }, fmtPercent(r.failures / r.attempts)))))));
  }

  const throughput = throughputChart(throughputEl, Math.max(throughputEl.clientWidth, 300));
  const latency = latencyChart(latencyEl, Math.max(latencyEl.clientWidth, 300));
  const stopResize = autoResize([[throughput, throughputEl], [latency, latencyEl]]);

  async function load() {
    try {
      const o = await api('GET', '/overview');
      clear(error);
      const w = o.webhooks;
      const hr = o.lastHour;
      clear(stats,
        stat('Webhooks', fmtNumber(w.total), `${fmtNumber(w.enabled)} enabled · ${fmtNumber(w.disabled)} disabled`, { href: '#/webhooks', testid: 'stat-webhooks' }),
        stat('Pending', fmtNumber(w.pending), 'owe a callback now', { href: '#/webhooks?state=pending', tone: w.pending ? 'info' : undefined, testid: 'stat-pending' }),
        stat('In backoff', fmtNumber(w.backoff), 'retrying after failures', { href: '#/webhooks?state=failing', tone: w.backoff ? 'warn' : undefined, testid: 'stat-backoff' }),
        stat('Disabled', fmtNumber(w.disabled), 'no callbacks until re-enabled', { href: '#/webhooks?state=disabled', tone: w.disabled ? 'bad' : undefined, testid: 'stat-disabled' }),
        stat('Callbacks / min', fmtNumber(o.lastMinute.callbacks), `last minute · ${fmtNumber(hr.perMinute)}/min average, ${fmtNumber(hr.callbacks)} in the last hour`, { testid: 'stat-rate' }),
        stat('Success rate', fmtPercent(hr.successRate), hr.callbacks ? `${fmtNumber(hr.successes)} of ${fmtNumber(hr.callbacks)} answered 2xx` : 'no callbacks in the last hour',
          { tone: hr.successRate === null ? undefined : hr.successRate >= 0.99 ? 'good' : hr.successRate >= 0.9 ? 'warn' : 'bad', testid: 'stat-success' }),
        stat('Latency p50 / p95', hr.latencyP50Ms === null ? '—' : `${fmtMs(hr.latencyP50Ms)} / ${fmtMs(hr.latencyP95Ms)}`, 'from change to delivered callback', { testid: 'stat-latency' }),
        stat('Oldest owed', o.delivery.oldestOwedAgeMs === null ? 'none' : fmtMs(o.delivery.oldestOwedAgeMs),
          o.delivery.oldestOwedSince ? `a change of ${fmtDate(o.delivery.oldestOwedSince)} still to deliver` : 'no notification is owed',
          // The webhook that owes it (pending or failing): no list shows exactly that one.
          { href: o.delivery.oldestOwedWebhook ? `#/webhooks/${encodeURIComponent(o.delivery.oldestOwedWebhook)}` : '#/webhooks?state=pending', tone: o.delivery.oldestOwedAgeMs === null ? undefined : o.delivery.oldestOwedAgeMs > 300_000 ? 'warn' : 'info', testid: 'stat-oldest-owed' }),
        stat('In flight', fmtNumber(o.delivery.inFlight), 'callbacks being sent now', { testid: 'stat-in-flight' }),
        stat('Records / clients', `${fmtNumber(o.records)} / ${fmtNumber(o.clients.active)}`, `records known / active clients${o.clients.total > o.clients.active ? ` (${fmtNumber(o.clients.total - o.clients.active)} revoked)` : ''}`, { href: '#/clients', testid: 'stat-records' }),
      );
      stats.setAttribute('aria-busy', 'false');
      clear(byHost, failureTable(o.failures.byHost, 'Host', (r) => h('a', { class: 'mono', href: `#/webhooks${q({ host: r.host })}` }, r.host)));
      clear(byClient, failureTable(o.failures.byClient, 'Client', (r) => h('a', { href: `#/webhooks${q({ client: r.client.id })}` }, r.client.name ?? r.client.id,
        h('span', { class: 'muted small mono block' }, r.client.id))));
      updateCharts(throughput, latency, o.series);
      refresh.mark();
    } catch (err) {
      clear(error, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not load the overview: ${err.message}`));
    }
  }

  const stop = every(REFRESH_MS, load);
  return () => {
    stop();
    stopResize();
    throughput.destroy();
    latency.destroy();
  };
}
