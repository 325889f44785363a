import { api } from '../api.js';
import { autoResize, latencyChart, throughputChart, updateCharts } from '../charts.js';
import { clear, every, fmtMs, fmtNumber, fmtPercent, h, pageHeader, refreshIndicator } from '../ui.js';

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
  view.append(
    pageHeader('Overview', 'Delivery over the last hour; refreshes every 5 seconds.', refresh.el),
    error,
    stats,
    h('div', { class: 'charts' },
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Throughput'), h('span', { class: 'muted small' }, 'callbacks per minute · red: failed')), throughputEl),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Change-to-callback latency'), h('span', { class: 'muted small' }, 'p50 and p95 per minute, successful callbacks')), latencyEl)),
  );

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
        stat('Records / clients', `${fmtNumber(o.records)} / ${fmtNumber(o.clients.active)}`, `records known / active clients${o.clients.total > o.clients.active ? ` (${fmtNumber(o.clients.total - o.clients.active)} revoked)` : ''}`, { href: '#/clients', testid: 'stat-records' }),
      );
      stats.setAttribute('aria-busy', 'false');
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
