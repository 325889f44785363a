import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_NAMED_PROBLEMS } from '../src/api/admin.ts';
import { ADMIN_TOKEN, backends, snapshot, startHarness, type Harness } from './helpers/harness.ts';

const GOOD = '0000-0002-1825-0097';
const WHEN = '2030-01-01T00:00:00Z';

for (const { backend, skip } of await backends()) describe(`POST /admin/api/changes refusals on ${backend}`, { skip }, () => {
  let h: Harness;
  before(async () => { h = await startHarness({}, { backend }); });
  after(async () => { await h?.close(); });

  const post = (changes: unknown[]) => h.svc.app.inject({
    method: 'POST', url: '/admin/api/changes',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ changes }),
  });

  test('a 400 names every bad item (iD, check character, time, shape), in item order, and changes nothing', async () => {
    const before = await snapshot(h.store);
    const res = await post([
      { orcid: GOOD, modified: WHEN },
      { orcid: '0000-0002-1825-0098', modified: WHEN },
      { orcid: GOOD, modified: WHEN },
      { orcid: GOOD, modified: 'yesterday' },
      { orcid: GOOD, modified: WHEN },
      { orcid: 42, modified: WHEN },
      { orcid: 'not-an-id', modified: WHEN },
    ]);
    assert.equal(res.statusCode, 400);
    const body = res.json() as { 'error-code': number; 'developer-message': string };
    assert.equal(body['error-code'], 9052);
    const msg = body['developer-message'];
    assert.match(msg, /4 problems, nothing was changed/);
    const order = ['changes.1.orcid', 'changes.3.modified', 'changes.5.orcid', 'changes.6.orcid'].map((p) => msg.indexOf(p));
    assert.ok(order.every((i) => i >= 0), `names every bad item: ${msg}`);
    assert.deepEqual([...order].sort((a, b) => a - b), order, 'in item order');
    for (const good of ['changes.0.', 'changes.2.', 'changes.4.']) assert.ok(!msg.includes(good), `names only bad items: ${msg}`);
    assert.match(msg, /check character/);
    assert.deepEqual(await snapshot(h.store), before);
  });

  test('only bad iDs: ORCID\'s 9001, every one named', async () => {
    const res = await post([{ orcid: '0000-0002-1825-0098', modified: WHEN }, { orcid: GOOD, modified: WHEN }, { orcid: '0000-0002-1825-009', modified: WHEN }]);
    assert.equal(res.statusCode, 400);
    const body = res.json() as { 'error-code': number; 'developer-message': string };
    assert.equal(body['error-code'], 9001);
    assert.match(body['developer-message'], /2 problems.*changes\.0\.orcid.*changes\.2\.orcid/);
  });

  test(`more than ${MAX_NAMED_PROBLEMS} bad items: the first ${MAX_NAMED_PROBLEMS} are named, the rest counted`, async () => {
    const changes = Array.from({ length: MAX_NAMED_PROBLEMS + 12 }, () => ({ orcid: '0000-0002-1825-0098', modified: WHEN }));
    const res = await post(changes);
    assert.equal(res.statusCode, 400);
    const msg = (res.json() as { 'developer-message': string })['developer-message'];
    assert.match(msg, new RegExp(`^.*${MAX_NAMED_PROBLEMS + 12} problems`));
    assert.equal(msg.match(/changes\.\d+\.orcid/g)?.length, MAX_NAMED_PROBLEMS);
    assert.match(msg, /and 12 more$/);
  });
});
