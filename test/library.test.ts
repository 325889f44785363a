import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as lib from '../src/index.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';

test('the library entry point starts a working service and opens stores', async () => {
  const svc = await lib.startService(lib.testConfig({ db: 'sqlite::memory:', port: 0, adminToken: 'library-test-admin-token', logLevel: 'silent' }), { store: new SqliteStore(':memory:') });
  try {
    assert.match(svc.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${svc.url}/health`);
    assert.equal(res.status, 200);
  } finally {
    await svc.close();
  }
  const store = await lib.createStore('sqlite::memory:');
  assert.equal(store.dialect, 'sqlite');
  assert.ok((await store.migrate()).length >= 1);
  assert.deepEqual(await store.migrate(), [], 'a second migrate is a no-op');
  await store.close();
  assert.equal(lib.isValidOrcid('0000-0002-1825-0097'), true);
});
