import { api, q } from '../api.js';
import { clear, every, fmtDate, h, pageHeader, stateBadge, statusBadge, timeCell } from '../ui.js';

/** After a touch, its webhooks are re-read this often, so that the deliveries show as they happen. */
const WATCH_MS = 2000;

export async function render(view, params) {
  const orcid = h('input', { class: 'input mono', id: 'touch-orcid', name: 'orcid', required: true, placeholder: '0000-0002-1825-0097', value: params.orcid ?? '', autocomplete: 'off', spellcheck: 'false' });
  const modified = h('input', { class: 'input mono', id: 'touch-modified', name: 'modified', placeholder: 'now', autocomplete: 'off', spellcheck: 'false' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Touch record');
  const result = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'inline-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'touch-orcid' }, 'ORCID iD'), orcid),
    h('div', { class: 'field' }, h('label', { for: 'touch-modified' }, 'Modified at ', h('span', { class: 'muted' }, '(optional, ISO 8601)')), modified),
    submit);

  view.append(
    pageHeader('Record changes', 'Mark a record modified, as a registry change would: every webhook on it is notified.'),
    h('section', { class: 'card' }, form,
      h('p', { class: 'muted small' }, 'A missing record is created. Leave “Modified at” empty for now; an explicit time older than the record’s current one is ignored.')),
    result,
  );

  async function webhooksOf(id) {
    try {
      const { webhooks, nextCursor } = await api('GET', `/webhooks${q({ orcid: id, limit: 50 })}`);
      if (!webhooks.length) return h('p', { class: 'muted' }, 'No webhooks are registered on this record.');
      return [
        h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'ID'), h('th', {}, 'Callback URL'), h('th', {}, 'Client'), h('th', {}, 'State'), h('th', {}, 'Last sent'), h('th', {}, 'Last status'))),
          h('tbody', {}, webhooks.map((w) => h('tr', {},
            h('td', { class: 'num' }, h('a', { href: `#/webhooks/${w.id}` }, `#${w.id}`)),
            h('td', { class: 'mono url' }, h('a', { href: `#/webhooks/${w.id}` }, w.url)),
            h('td', {}, w.client.name ?? w.client.id),
            h('td', {}, stateBadge(w.state)),
            h('td', {}, timeCell(w.lastSent)),
            h('td', {}, statusBadge(w.lastStatus))))))),
        nextCursor ? h('p', { class: 'muted small' }, h('a', { href: `#/webhooks${q({ search: id })}` }, 'All webhooks on this record →')) : null,
      ];
    } catch (err) {
      return h('div', { class: 'alert alert-error' }, `Could not list its webhooks: ${err.message}`);
    }
  }

  let stopWatch = () => undefined;

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    stopWatch();
    const id = orcid.value.trim();
    if (!id) {
      clear(result, h('div', { class: 'alert alert-error', role: 'alert' }, 'Enter an ORCID iD, such as 0000-0002-1825-0097.'));
      orcid.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Touching…';
    try {
      const when = modified.value.trim();
      const r = await api('PUT', `/records/${encodeURIComponent(id)}`, { body: when ? { modified: when } : {} });
      const headline = r.created ? `Record ${r.orcid} created` : r.changed ? `Record ${r.orcid} marked modified` : `Change ignored: ${r.orcid} already has a newer modified time`;
      const tone = r.ignored ? 'warn' : 'ok';
      const webhooksBox = h('div', { 'data-testid': 'record-webhooks' });
      const notified = r.webhooksNotified === 1 ? '1 webhook notified' : `${r.webhooksNotified} webhooks notified`;
      clear(result, h('section', { class: `card result-card result-${tone}`, 'data-testid': 'touch-result' },
        h('div', { class: 'card-head' }, h('h2', {}, headline), h('span', { class: 'badge badge-count' }, notified)),
        h('dl', { class: 'details' },
          h('div', {}, h('dt', {}, 'Modified'), h('dd', {}, h('time', { datetime: r.modified }, fmtDate(r.modified)), h('div', { class: 'muted small mono' }, r.modified))),
          h('div', {}, h('dt', {}, 'Outcome'), h('dd', {}, r.created ? 'Created' : r.changed ? 'Changed' : 'Ignored (not newer)'))),
        h('h3', {}, 'Webhooks on this record'),
        webhooksBox));
      stopWatch = every(WATCH_MS, async () => clear(webhooksBox, await webhooksOf(r.orcid)));
    } catch (err) {
      clear(result, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not touch ${id}: ${err.message}`));
    } finally {
      submit.disabled = false;
      submit.textContent = 'Touch record';
    }
  });

  orcid.focus();
  return () => stopWatch();
}
