import type { ApplyChangesResult, RecordChange, Store } from '../store/types.ts';

/*
 * The one seam through which record changes enter the service: the admin API, the change-list
 * importers and the upstream poller all apply changes through a ChangeSink. A new source (a
 * message queue, another registry) is one new file implementing ChangeSource.
 */

export interface ApplyOptions {
  /** Create records not known yet (admin API, imports); false ignores them (the poller). */
  create: boolean;
  /** One change: answer its record's modified time after the apply (ApplyChangesResult.modifiedAt). */
  reportModified?: boolean;
}

export interface ChangeSink {
  /** Applies changes in one transaction: older-or-equal ones are ignored, so repeats are harmless. */
  apply(source: string, changes: RecordChange[], opts: ApplyOptions): Promise<ApplyChangesResult>;
}

/** A long-running producer of changes, started and stopped with the service. */
export interface ChangeSource {
  readonly name: string;
  start(sink: ChangeSink): Promise<void>;
  stop(): Promise<void>;
}

export interface ChangeSinkDeps {
  store: Store;
  notifyDelayMs: number;
  now?: () => number;
  /** After each apply (metrics, waking the delivery worker). */
  onApplied?: (source: string, result: ApplyChangesResult) => void;
}

export function createChangeSink(deps: ChangeSinkDeps): ChangeSink {
  const now = deps.now ?? Date.now;
  return {
    async apply(source, changes, opts) {
      const result = await deps.store.applyChanges(changes, { create: opts.create, now: now(), notifyDelayMs: deps.notifyDelayMs, reportModified: opts.reportModified });
      deps.onApplied?.(source, result);
      return result;
    },
  };
}
