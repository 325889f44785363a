import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkOrcid } from '../domain/orcid-id.ts';
import { parseIsoTime } from '../domain/time.ts';
import { createChangeSink } from '../changes/source.ts';
import type { ApplyChangesResult, RecordChange, Store } from '../store/types.ts';

export interface ImportProgress {
  lines: number;
  bytes: number;
  totalBytes: number | null;
}

export interface ImportReport extends ApplyChangesResult {
  lines: number;
  rejected: { line: number; reason: string }[];
  /** How many rejected lines were seen (the list keeps the first 1,000). */
  rejectedCount: number;
}

const BATCH = 1000;
const MAX_LISTED = 1000;


export interface ImportOptions {
  notifyDelayMs: number;
  totalBytes?: number | null;
  onProgress?: (p: ImportProgress) => void;
  onBatch?: (r: ApplyChangesResult) => void;
  /**
   * Apply nothing when any line is malformed (as the bulk API refuses a whole request): the file is
   * read twice, first only to check it. Without it the good lines are applied and the bad reported.
   */
  allOrNothing?: boolean;
}

/**
 * Streams a registry's change list, CSV (`orcid,last_modified` header) or JSON lines (objects with
 * the same fields), into the store in batches, in constant memory. Missing records are created,
 * newer ones marked modified, older ones ignored; malformed lines are reported with their numbers.
 */
export async function importChanges(store: Store, file: string, opts: ImportOptions): Promise<ImportReport> {
  if (opts.allOrNothing) {
    const checked = await readChanges(store, file, { ...opts, onBatch: undefined }, false);
    if (checked.rejectedCount) return checked;
  }
  return readChanges(store, file, opts, true);
}

/** One pass over the file; with apply false the lines are only checked (the counts stay 0). */
async function readChanges(store: Store, file: string, opts: ImportOptions, apply: boolean): Promise<ImportReport> {
  const report: ImportReport = { created: 0, changed: 0, ignored: 0, webhooksNotified: 0, lines: 0, rejected: [], rejectedCount: 0 };
  const stream = createReadStream(file);
  let bytes = 0;
  stream.on('data', (chunk) => { bytes += chunk.length; });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let format: 'csv' | 'jsonl' | null = null;
  let batch: RecordChange[] = [];
  const reject = (line: number, reason: string) => {
    report.rejectedCount++;
    if (report.rejected.length < MAX_LISTED) report.rejected.push({ line, reason });
  };
  const sink = createChangeSink({ store, notifyDelayMs: opts.notifyDelayMs });
  const flush = async () => {
    if (!batch.length) return;
    if (!apply) {
      batch = [];
      return;
    }
    const r = await sink.apply('import', batch, { create: true });
    report.created += r.created;
    report.changed += r.changed;
    report.ignored += r.ignored;
    report.webhooksNotified += r.webhooksNotified;
    opts.onBatch?.(r);
    batch = [];
    opts.onProgress?.({ lines: report.lines, bytes, totalBytes: opts.totalBytes ?? null });
  };
  let lineNo = 0;
  for await (const raw of rl) {
    lineNo++;
    const line = raw.replace(/^\uFEFF/, '').trim();
    if (!line) continue;
    if (format === null) {
      if (line.startsWith('{')) format = 'jsonl';
      else {
        format = 'csv';
        if (line.replace(/\s/g, '').toLowerCase() !== 'orcid,last_modified') {
          throw new Error(`line ${lineNo}: expected the CSV header "orcid,last_modified" (or JSON lines), got "${line.slice(0, 80)}"`);
        }
        continue;
      }
    }
    report.lines++;
    let orcid: unknown;
    let modified: unknown;
    if (format === 'csv') {
      const parts = line.split(',');
      if (parts.length !== 2) {
        reject(lineNo, `expected 2 comma-separated fields (orcid,last_modified), got ${parts.length}`);
        continue;
      }
      [orcid, modified] = parts.map((p) => p.trim().replace(/^"(.*)"$/, '$1'));
    } else {
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        orcid = obj.orcid;
        modified = obj.last_modified;
      } catch {
        reject(lineNo, 'not valid JSON');
        continue;
      }
    }
    if (typeof orcid !== 'string') {
      reject(lineNo, 'missing orcid');
      continue;
    }
    const check = checkOrcid(orcid);
    if (!check.ok) {
      reject(lineNo, check.reason);
      continue;
    }
    const t = typeof modified === 'string' ? parseIsoTime(modified) : null;
    if (t === null) {
      reject(lineNo, `last_modified ${JSON.stringify(modified)} is not an ISO 8601 time`);
      continue;
    }
    batch.push({ orcid, modifiedAt: t });
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  opts.onProgress?.({ lines: report.lines, bytes, totalBytes: opts.totalBytes ?? null });
  return report;
}
