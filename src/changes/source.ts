import { batcher, type Settled } from '../store/batcher.ts';
import { isDatabaseUnavailable } from '../store/database-errors.ts';
import type { ApplyChangesResult, ChangeOutcome, RecordChange, Store } from '../store/types.ts';

/*
 * The one seam through which record changes enter the service: the admin API, the change-list
 * importers and the upstream poller all apply changes through a ChangeSink. A new source (a
 * message queue, another registry) is one new file implementing ChangeSource.
 */

export interface ApplyOptions {
  /** Create records not known yet (admin API, imports); false ignores them (the poller). */
  create: boolean;
  /** Answer each change's own outcome (ApplyChangesResult.changes), e.g. its record's modified time after the apply. */
  perChange?: boolean;
}

export interface ChangeSink {
  /**
   * Applies changes atomically, in order: older-or-equal ones are ignored, so repeats are harmless.
   * Answers once they are committed, with the counts (and outcomes) of these changes alone.
   */
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
  /** Group commits in flight at once (default 2); the calls that arrive meanwhile wait and go together. */
  maxInFlight?: number;
}

/** Changes of several calls merged into one store call at most (a larger call goes alone). */
export const MAX_GROUP_CHANGES = 10_000;

interface Call {
  source: string;
  changes: RecordChange[];
  opts: ApplyOptions;
}

/** The counts (and, if asked, the outcomes) of one call's share of a group's outcomes. */
function share(outcomes: ChangeOutcome[], perChange: boolean | undefined): ApplyChangesResult {
  const r: ApplyChangesResult = { created: 0, changed: 0, ignored: 0, webhooksNotified: 0 };
  for (const o of outcomes) {
    r[o.outcome]++;
    r.webhooksNotified += o.webhooksNotified;
  }
  return perChange ? { ...r, changes: outcomes } : r;
}

/**
 * Group commit (issue 12, cause 6): the calls that arrive in one turn of the event loop, and those
 * that arrive while maxInFlight groups are being written, go to the store as one applyChanges (one
 * transaction, one wake-up) instead of one each. Changes are applied in arrival order, so a group
 * ends as the calls one after the other would; each call is answered after the commit with its own
 * changes' outcomes. If a group fails, its calls are applied again one by one, so that one bad call
 * fails alone. A group is a prefix of the waiting calls with the same `create`, up to
 * MAX_GROUP_CHANGES (at least one call).
 */
export function createChangeSink(deps: ChangeSinkDeps): ChangeSink {
  const now = deps.now ?? Date.now;

  const applyOne = async (p: Call): Promise<Settled<ApplyChangesResult>> => {
    try {
      const result = await deps.store.applyChanges(p.changes, { create: p.opts.create, now: now(), notifyDelayMs: deps.notifyDelayMs, perChange: p.opts.perChange });
      deps.onApplied?.(p.source, result);
      return { ok: result };
    } catch (err) {
      return { err };
    }
  };

  const applyGroup = async (group: Call[]): Promise<Settled<ApplyChangesResult>[]> => {
    if (group.length === 1) return [await applyOne(group[0]!)];
    let outcomes: ChangeOutcome[];
    try {
      const merged = group.flatMap((p) => p.changes);
      const r = await deps.store.applyChanges(merged, { create: group[0]!.opts.create, now: now(), notifyDelayMs: deps.notifyDelayMs, perChange: true });
      outcomes = r.changes!;
    } catch (err) {
      // Nothing of the group was written. A database that does not answer fails every call of it
      // at once: one by one, each would wait for its own timeouts, behind the others (22 s for a
      // change sent in a stall, against the 1 s statement timeout). Else each call again on its
      // own, so that a bad one fails alone.
      if (isDatabaseUnavailable(err)) return group.map(() => ({ err }));
      return Promise.all(group.map(applyOne));
    }
    let at = 0;
    return group.map((p) => {
      const result = share(outcomes.slice(at, (at += p.changes.length)), p.opts.perChange);
      deps.onApplied?.(p.source, result);
      return { ok: result };
    });
  };

  const calls = batcher(applyGroup, {
    maxSize: Infinity,
    maxInFlight: deps.maxInFlight ?? 2,
    admit: () => {
      let create: boolean | undefined;
      let size = 0;
      let open = true;
      return (p) => {
        open &&= create === undefined || (p.opts.create === create && size + p.changes.length <= MAX_GROUP_CHANGES);
        if (open) {
          create = p.opts.create;
          size += p.changes.length;
        }
        return open;
      };
    },
  });

  return { apply: (source, changes, opts) => calls.add({ source, changes, opts }) };
}
