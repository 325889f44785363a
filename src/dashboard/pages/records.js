import { api, q } from '../api.js';
import { clear, emptyState, every, fmtDate, h, pageHeader, stateBadge, statusBadge, timeCell } from '../ui.js';

const PAGE_SIZE = 25;

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

  // The list of known records, by iD, a page at a time (cursor: the last iD of the previous page).
  const find = h('input', { type: 'search', class: 'input mono', id: 'records-find', placeholder: 'Find an exact ORCID iD', 'aria-label': 'Find a record by ORCID iD', autocomplete: 'off', spellcheck: 'false' });
  const listBody = h('tbody');
  const listStatus = h('div', { class: 'table-status' });
  const listError = h('div');
  const prev = h('button', { type: 'button', class: 'btn', onclick: () => go(-1) }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn', onclick: () => go(1) }, 'Next →');
  const pageLabel = h('span', { class: 'muted small' });
  let cursors = [undefined];
  let nextCursor = null;

  view.append(
    pageHeader('Records', 'Known records, and record changes: touch a record, as a registry change would, and every webhook on it is notified.'),
    h('section', { class: 'card' }, h('h2', {}, 'Touch a record'), form,
      h('p', { class: 'muted small' }, 'A missing record is created. Leave “Modified at” empty for now; an explicit time older than the record’s current one is ignored.')),
    result,
    h('section', { class: 'card card-flush' },
      h('div', { class: 'card-head card-head-pad' }, h('h2', {}, 'All records'), find),
      listError,
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'data-testid': 'records' },
        h('thead', {}, h('tr', {}, h('th', {}, 'ORCID iD'), h('th', {}, 'Modified'), h('th', { class: 'col-wide' }, 'Known since'), h('th', {}, ''))),
        listBody)),
      listStatus,
      h('div', { class: 'pager' }, pageLabel, h('div', { class: 'pager-buttons' }, prev, next))),
  );

  function recordRow(r) {
    return h('tr', { dataset: { orcid: r.orcid } },
      h('td', { class: 'mono nowrap' }, h('a', { href: `#/webhooks${q({ orcid: r.orcid })}`, title: 'Its webhooks' }, r.orcid)),
      h('td', { class: 'nowrap' }, timeCell(r.modified)),
      h('td', { class: 'nowrap col-wide' }, timeCell(r.created)),
      h('td', { class: 'actions' },
        h('a', { class: 'btn btn-small col-wide', href: `#/webhooks${q({ orcid: r.orcid })}` }, 'Webhooks'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => { orcid.value = r.orcid; modified.value = ''; form.requestSubmit(); } }, 'Touch')));
  }

  async function loadList() {
    const wanted = find.value.trim();
    try {
      const res = await api('GET', `/records${q(wanted ? { orcid: wanted } : { cursor: cursors[cursors.length - 1], limit: PAGE_SIZE })}`);
      clear(listError);
      nextCursor = res.nextCursor;
      clear(listBody, res.records.map(recordRow));
      clear(listStatus, res.records.length ? null : emptyState(wanted ? `No record ${wanted}` : 'No records yet',
        wanted ? 'Touch it above to create it.' : 'Add them with “orcid-webhooks records add”, an import, or a touch above.'));
      prev.disabled = wanted !== '' || cursors.length <= 1;
      next.disabled = !nextCursor;
      pageLabel.textContent = res.records.length ? `Page ${wanted ? 1 : cursors.length} · ${res.records.length} shown` : '';
    } catch (err) {
      clear(listBody);
      clear(listError, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not list records: ${err.message}`));
    }
  }

  function go(delta) {
    if (delta > 0 && nextCursor) cursors.push(nextCursor);
    if (delta < 0 && cursors.length > 1) cursors.pop();
    void loadList();
  }

  let debounce;
  find.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { cursors = [undefined]; void loadList(); }, 300);
  });

  async function webhooksOf(id) {
    try {
      const { webhooks, nextCursor } = await api('GET', `/webhooks${q({ orcid: id, limit: 50 })}`);
      if (!webhooks.length) return h('p', { class: 'muted' }, 'No webhooks are registered on this record.');
      return [
        h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'ID'), h('th', {}, 'Callback URL'), h('th', { class: 'col-wide' }, 'Client'), h('th', {}, 'State'), h('th', {}, 'Last attempt'), h('th', {}, 'Last status'), h('th', { class: 'col-wide' }, 'Last success'))),
          h('tbody', {}, webhooks.map((w) => h('tr', {},
            h('td', { class: 'num' }, h('a', { href: `#/webhooks/${w.id}` }, `#${w.id}`)),
            h('td', { class: 'mono url' }, h('a', { href: `#/webhooks/${w.id}` }, w.url)),
            h('td', { class: 'col-wide' }, w.client.name ?? w.client.id),
            h('td', {}, stateBadge(w.state)),
            h('td', { class: 'nowrap' }, timeCell(w.lastAttempt)),
            h('td', {}, statusBadge(w.lastStatus)),
            h('td', { class: 'nowrap col-wide' }, timeCell(w.lastSuccess))))))),
        nextCursor ? h('p', { class: 'muted small' }, h('a', { href: `#/webhooks${q({ orcid: id })}` }, 'All webhooks on this record →')) : null,
      ];
    } catch (err) {
      return h('div', { class: 'alert alert-error' }, `Could not list its webhooks: ${err.message}`);
    }
  }

  let stopWatch = () => undefined;
  /** Set when the page is left: a touch answered after that starts no watch (it would never stop). */
  let left = false;

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
      if (!left) stopWatch = every(WATCH_MS, async () => clear(webhooksBox, await webhooksOf(r.orcid)));
      void loadList();
    } catch (err) {
      clear(result, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not touch ${id}: ${err.message}`));
    } finally {
      submit.disabled = false;
      submit.textContent = 'Touch record';
    }
  });

  await loadList();
  orcid.focus();
  return () => {
    left = true;
    stopWatch();
    clearTimeout(debounce);
  };
}
