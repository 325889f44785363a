import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { createChangeSink } from '../changes/source.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import type { RecordChange, Store } from '../store/types.ts';
import { UPSTREAM_SOURCE } from '../upstream/poller.ts';
import { TarMemberStream } from '../upstream/tar.ts';
import type { ImportProgress, ImportReport } from './import.ts';

/*
 * ORCID's "lambda file" (premium members; ORCID/public-data-sync): `last_modified.csv.tar`, a
 * gzipped tar holding `last_modified.csv`, or that CSV itself. A header line, then one record a
 * line, newest first: the iD in column 1, the last-modified time in column 4 as
 * `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC). Streamed in constant memory (20 million lines are fine);
 * since the file is newest first, reading stops at the upstream cursor: older changes are the
 * poller's, already applied.
 */

export interface LambdaImportReport extends ImportReport {
  /** Stopped at the stored cursor (lines older than it were not read). */
  stoppedAtCursor: boolean;
  cursor: number | null;
  newest: number | null;
}

const BATCH = 1000;
const MAX_LISTED = 1000;

/** `2026-12-01 10:11:12.123456` (UTC) as epoch ms; null when malformed. */
export function parseLambdaTime(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?$/.exec(s.trim());
  if (!m) return null;
  const ms = Number((m[7] ?? '0').padEnd(3, '0').slice(0, 3));
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms);
  return Number.isNaN(t) ? null : t;
}

/** The CSV text of the file: gunzipped when it starts with gzip's magic, untarred when it is a tar. */
async function csvStream(file: string, onBytes: (n: number) => void): Promise<{ input: Readable; close: () => void }> {
  const fh = await open(file, 'r');
  const head = Buffer.alloc(512);
  const { bytesRead } = await fh.read(head, 0, 512, 0);
  await fh.close();
  const raw = createReadStream(file);
  raw.on('data', (c) => onBytes(c.length));
  let stream: Readable = raw;
  let tarProbe = head.subarray(0, bytesRead);
  if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    stream = raw.pipe(createGunzip());
    tarProbe = Buffer.alloc(0);
  }
  const isTar = tarProbe.length ? tarProbe.length >= 262 && tarProbe.subarray(257, 262).toString('latin1') === 'ustar' : !/\.csv(\.gz)?$/i.test(file);
  if (isTar) {
    const member = new TarMemberStream((name) => /(^|\/)last_modified\.csv$/.test(name) || /\.csv$/.test(name));
    stream.on('error', (e) => member.destroy(e));
    stream = stream.pipe(member);
  }
  return { input: stream, close: () => raw.destroy() };
}

export async function importOrcidLambda(
  store: Store,
  file: string,
  opts: { notifyDelayMs: number; create: boolean; totalBytes?: number | null; onProgress?: (p: ImportProgress) => void },
): Promise<LambdaImportReport> {
  const report: LambdaImportReport = {
    created: 0, changed: 0, ignored: 0, webhooksNotified: 0, lines: 0, rejected: [], rejectedCount: 0, stoppedAtCursor: false, cursor: null, newest: null,
  };
  const state = await store.upstreamState(UPSTREAM_SOURCE);
  report.cursor = state?.cursor ?? null;
  const sink = createChangeSink({ store, notifyDelayMs: opts.notifyDelayMs });
  let bytes = 0;
  const { input, close } = await csvStream(file, (n) => { bytes += n; });
  const rl = createInterface({ input, crlfDelay: Infinity });
  let batch: RecordChange[] = [];
  const reject = (line: number, reason: string) => {
    report.rejectedCount++;
    if (report.rejected.length < MAX_LISTED) report.rejected.push({ line, reason });
  };
  const flush = async () => {
    if (!batch.length) return;
    const r = await sink.apply('import', batch, { create: opts.create });
    report.created += r.created;
    report.changed += r.changed;
    report.ignored += r.ignored;
    report.webhooksNotified += r.webhooksNotified;
    batch = [];
    opts.onProgress?.({ lines: report.lines, bytes, totalBytes: opts.totalBytes ?? null });
  };
  let lineNo = 0;
  try {
    for await (const raw of rl) {
      lineNo++;
      const line = raw.replace(/^\uFEFF/, '').trim();
      if (!line) continue;
      if (lineNo === 1 && !/^\d{4}-\d{4}-\d{4}-\d{3}[\dX]|orcid\.org\//.test(line)) continue; // the header
      report.lines++;
      const cols = line.split(',');
      if (cols.length < 4) {
        reject(lineNo, `expected at least 4 comma-separated columns (iD in 1, last-modified in 4), got ${cols.length}`);
        continue;
      }
      const orcid = cols[0]!.trim().replace(/^"|"$/g, '').replace(/^https?:\/\/[^/]+\//, '');
      const check = checkOrcid(orcid);
      if (!check.ok) {
        reject(lineNo, check.reason);
        continue;
      }
      const t = parseLambdaTime(cols[3]!.replace(/^"|"$/g, ''));
      if (t === null) {
        reject(lineNo, `column 4 ${JSON.stringify(cols[3])} is not a time such as 2026-12-01 10:11:12.123456`);
        continue;
      }
      if (report.cursor !== null && t < report.cursor) {
        report.lines--;
        report.stoppedAtCursor = true;
        break;
      }
      report.newest = Math.max(report.newest ?? t, t);
      batch.push({ orcid, modifiedAt: t });
      if (batch.length >= BATCH) await flush();
    }
    await flush();
  } finally {
    rl.close();
    close();
  }
  // A first import leaves the poller to continue from the file's newest change.
  if (report.cursor === null && report.newest !== null) report.cursor = await store.initUpstreamCursor(UPSTREAM_SOURCE, report.newest, Date.now());
  opts.onProgress?.({ lines: report.lines, bytes, totalBytes: opts.totalBytes ?? null });
  return report;
}
