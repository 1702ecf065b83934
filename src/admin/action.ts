// One admin request's unit of work: who acts, on what, the model check before
// anything happens, and the write-through that keeps PostgreSQL, OpenFGA, the
// decision caches and the audit trail in step.
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import type { Logger } from 'pino';
import type { Db, Queryable } from '../db/index.js';
import type { DecisionInvalidator, RequestEnv, TupleChange, WriteAnnouncement } from '../authz/types.js';
import { recordAudit } from './audit.js';
import { Problem } from '../shared/problem.js';
import { forbidden, fromDbError } from './errors.js';
import { isEmptyChange, reverseChange, type Engine } from './engine.js';
import { ancestorPath, lockNodes } from './store.js';

export interface AdminRuntime {
  db: Db;
  engine: Engine;
  invalidator: DecisionInvalidator;
  log?: Logger | undefined;
}

/** Raised when the change is committed everywhere but the decision caches were not told. */
export class InvalidationFailedError extends Problem {
  constructor(override readonly cause: unknown) {
    super(500, 'invalidation-failed', 'Change applied, cache invalidation failed', {
      detail:
        'the change is committed in PostgreSQL and OpenFGA, but decision caches could not be invalidated; cached decisions may be stale until they expire',
    });
  }
}

export interface ActionOptions {
  /** e.g. `division.create`, `role.grant`. */
  action: string;
  /** OpenFGA object ref of what the action is about, e.g. `division:emea`. */
  target: string;
  /**
   * Audit scope (ancestor path) used for denied/failed entries; defaults to the
   * target's current ancestor path. Creates pass the parent's path plus the new node.
   */
  scope?: (q: Queryable) => Promise<string[]>;
}

export interface WriteThroughResult<T> {
  result: T;
  before?: unknown;
  after?: unknown;
  detail?: unknown;
  /** Scope for the success entry; defaults to the action's scope. */
  scope?: string[];
  /** Further entries of the same change, e.g. one per tuple, each with its own scope. */
  extra?: { action: string; target: string; scope: string[]; before?: unknown; after?: unknown }[];
}

export interface LockedWrite<T> extends WriteThroughResult<T> {
  /** The OpenFGA change, decided under the locks (one atomic Write). */
  change?: TupleChange;
  /** Nothing to change (already so): no write and no audit entry. */
  unchanged?: boolean;
  /** Nodes whose settings documents this write changed: their settings-versions are bumped before the answer. */
  settingsChanged?: string[];
}

export class AdminAction {
  readonly actor: string;
  readonly requestId: string;

  constructor(
    private readonly rt: AdminRuntime,
    c: Context<RequestEnv>,
    readonly opts: ActionOptions,
  ) {
    this.actor = c.get('principal').subject;
    this.requestId = c.get('requestId') ?? randomUUID();
  }

  scope(q: Queryable): Promise<string[]> {
    return this.opts.scope ? this.opts.scope(q) : ancestorPath(q, this.opts.target);
  }

  /**
   * The model decides: `permission` on `object` for the caller, checked fresh in
   * OpenFGA. A denial is audited, then answered with 403.
   */
  async authorize(permission: string, object: string): Promise<void> {
    const allowed = await this.rt.engine.check(this.actor, permission, object);
    if (allowed) return;
    await this.refuse(forbidden(permission, object), { missing: permission, on: object });
  }

  /** Records a refused attempt (`denied`, with `detail`) in the audit trail, then throws `err`. */
  async refuse(err: Problem, detail: unknown): Promise<never> {
    await recordAudit(this.rt.db, {
      actor: this.actor,
      action: this.opts.action,
      target: this.opts.target,
      scope: await this.scope(this.rt.db),
      outcome: 'denied',
      requestId: this.requestId,
      detail,
    });
    throw err;
  }

  /**
   * PostgreSQL and OpenFGA never disagree: the DB part and the audit entry run in
   * one transaction, OpenFGA is written (one atomic Write) inside it, and the
   * transaction commits only after OpenFGA accepted. If the commit then fails,
   * the OpenFGA change is reversed. Caches are told before the caller is answered.
   */
  writeThrough<T>(change: TupleChange, apply: (tx: Queryable) => Promise<WriteThroughResult<T>>): Promise<T> {
    return this.writeLocked([], async (tx) => ({ ...(await apply(tx)), change }));
  }

  /**
   * writeThrough under per-node locks: `locks` (object refs) are taken first in the
   * transaction, then `apply` reads what decides the write (the node exists, the
   * tuple is there, the last admin) and returns the OpenFGA change. Writers of the
   * same node run one after another, so what `apply` read is still true when the
   * change commits. `unchanged` means nothing to do: no write, no audit entry.
   */
  async writeLocked<T>(locks: string[], apply: (tx: Queryable) => Promise<LockedWrite<T>>): Promise<T> {
    let written = false;
    let change: TupleChange = { writes: [], deletes: [] };
    let settingsChanged: string[] = [];
    let announced: WriteAnnouncement | undefined;
    let out: T;
    try {
      out = await this.rt.db.transaction(async (tx) => {
        await lockNodes(tx, locks);
        const r = await apply(tx);
        if (r.unchanged) return r.result;
        change = r.change ?? change;
        settingsChanged = r.settingsChanged ?? [];
        await recordAudit(tx, {
          actor: this.actor,
          action: this.opts.action,
          target: this.opts.target,
          scope: r.scope ?? (await this.scope(tx)),
          outcome: 'success',
          requestId: this.requestId,
          before: r.before,
          after: r.after,
          detail: r.detail,
        });
        for (const e of r.extra ?? []) {
          await recordAudit(tx, { ...e, actor: this.actor, outcome: 'success', requestId: this.requestId });
        }
        if (!isEmptyChange(change)) {
          // Announced before it is written, so the ReadChanges poller can tell this write,
          // once bumped below, from a later change of the same tuple by someone else.
          announced = await this.rt.invalidator.announce(change);
          await this.rt.engine.write(change);
          written = true;
        }
        return r.result;
      });
    } catch (err) {
      if (written) await this.compensate(change, err);
      throw fromDbError(err) ?? err;
    }
    if (!isEmptyChange(change)) {
      try {
        await this.rt.invalidator.tuplesChanged(change, announced);
      } catch (err) {
        this.rt.log?.error({ err, requestId: this.requestId, change }, 'decision cache invalidation failed after an admin write');
        throw new InvalidationFailedError(err);
      }
    }
    if (settingsChanged.length > 0) {
      try {
        await this.rt.invalidator.settingsChanged(settingsChanged);
      } catch (err) {
        this.rt.log?.error({ err, requestId: this.requestId, settingsChanged }, 'settings cache invalidation failed after an admin write');
        throw new InvalidationFailedError(err);
      }
    }
    return out;
  }

  private async compensate(change: TupleChange, cause: unknown): Promise<void> {
    // Not announced: a rare path, left to be bumped again by the ReadChanges poller too.
    const undo = reverseChange(change);
    try {
      await this.rt.engine.write(undo);
      await this.rt.invalidator.tuplesChanged(undo);
      this.rt.log?.warn({ requestId: this.requestId, cause }, 'database commit failed after the OpenFGA write; OpenFGA change reversed');
    } catch (err) {
      // Nothing more can be done in-process: say exactly what disagrees.
      this.rt.log?.error(
        { err, cause, requestId: this.requestId, change },
        'database commit failed and the OpenFGA change could not be reversed: PostgreSQL and OpenFGA disagree for these tuples',
      );
      await this.rt.invalidator.tuplesChanged(change).catch(() => undefined);
    }
  }

  /** Appends a `failed` entry for an attempt that broke (best effort: the original error wins). */
  async recordFailure(err: unknown): Promise<void> {
    try {
      await recordAudit(this.rt.db, {
        actor: this.actor,
        action: this.opts.action,
        target: this.opts.target,
        scope: await this.scope(this.rt.db),
        outcome: 'failed',
        requestId: this.requestId,
        detail: { error: err instanceof Error ? err.message : String(err) },
      });
    } catch (auditErr) {
      this.rt.log?.error({ err: auditErr, requestId: this.requestId }, 'could not record a failed admin attempt in the audit trail');
    }
  }
}

/**
 * Runs a state-changing handler. Refusals (4xx) are the caller's business and
 * denials are audited by authorize(); anything else that breaks (OpenFGA down, a
 * database error) leaves a `failed` audit entry, then reaches the error renderer.
 */
export async function mutation<R>(
  rt: AdminRuntime,
  c: Context<RequestEnv>,
  opts: ActionOptions,
  fn: (a: AdminAction) => Promise<R>,
): Promise<R> {
  const a = new AdminAction(rt, c, opts);
  try {
    return await fn(a);
  } catch (thrown) {
    const err = fromDbError(thrown) ?? thrown;
    const refusal = err instanceof Problem && err.status < 500;
    if (!refusal && !(err instanceof InvalidationFailedError)) await a.recordFailure(err);
    throw err;
  }
}

/** A read-only request: authorize (denials audited) then answer. */
export function reader(rt: AdminRuntime, c: Context<RequestEnv>, opts: ActionOptions): AdminAction {
  return new AdminAction(rt, c, opts);
}
