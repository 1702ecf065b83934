// PostgreSQL behind one narrow interface: node-postgres when DATABASE_URL is set,
// PGlite (embedded, on disk under the data dir, or in memory) otherwise.
import { ensurePrivateDir } from '../shared/private-dir.js';

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** Runs several `;`-separated statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** postgres://… ; when absent PGlite is used. */
  url?: string;
  /** PGlite data directory; absent means in memory. */
  pgliteDir?: string;
}

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.url) {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: opts.url, max: 10 });
    await pool.query('select 1');
    return {
      kind: 'postgres',
      async query<T>(sql: string, params?: unknown[]) {
        const r = await pool.query(sql, params as unknown[]);
        return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
      },
      async exec(sql: string) {
        await pool.query(sql);
      },
      async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
        const conn = await pool.connect();
        try {
          await conn.query('begin');
          const tx: Queryable = {
            async query<R>(sql: string, params?: unknown[]) {
              const r = await conn.query(sql, params as unknown[]);
              return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
            },
            async exec(sql: string) {
              await conn.query(sql);
            },
          };
          const out = await fn(tx);
          await conn.query('commit');
          return out;
        } catch (err) {
          await conn.query('rollback').catch(() => undefined);
          throw err;
        } finally {
          conn.release();
        }
      },
      close: () => pool.end(),
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  if (opts.pgliteDir) ensurePrivateDir(opts.pgliteDir);
  const lite = opts.pgliteDir ? new PGlite(opts.pgliteDir) : new PGlite();
  await lite.waitReady;
  return {
    kind: 'pglite',
    async query<T>(sql: string, params?: unknown[]) {
      const r = await lite.query<T>(sql, params);
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
    },
    async exec(sql: string) {
      await lite.exec(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      return lite.transaction(async (t) =>
        fn({
          async query<R>(sql: string, params?: unknown[]) {
            const r = await t.query<R>(sql, params);
            return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
          },
          async exec(sql: string) {
            await t.exec(sql);
          },
        }),
      );
    },
    close: () => lite.close(),
  };
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Applies `migrations` of one component (e.g. `tenant-service`, `admin`) in order,
 * each in its own transaction, recording them in schema_migrations. Re-running is a no-op.
 */
export async function migrate(db: Db, component: string, migrations: Migration[]): Promise<number> {
  await db.query(
    `create table if not exists schema_migrations (
       component text not null, version integer not null, name text not null,
       applied_at timestamptz not null default now(), primary key (component, version))`,
  );
  const done = await db.query<{ version: number }>('select version from schema_migrations where component = $1', [component]);
  const applied = new Set(done.rows.map((r) => Number(r.version)));
  let count = 0;
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    await db.transaction(async (tx) => {
      await tx.exec(m.sql);
      await tx.query('insert into schema_migrations (component, version, name) values ($1, $2, $3)', [component, m.version, m.name]);
    });
    count += 1;
  }
  return count;
}
