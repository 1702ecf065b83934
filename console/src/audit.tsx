// The audit trail the caller may read: filtered, paged (newest first), each change
// with its before/after.
import { useState } from 'preact/hooks';
import { api, q, type AuditEntry } from './api.js';
import { json, ProblemView } from './ui.js';

interface Filters {
  actor?: string;
  action?: string;
  target?: string;
  under?: string;
  outcome?: string;
}

function Diff({ before, after }: { before: unknown; after: unknown }) {
  const obj = (v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : v === null || v === undefined ? {} : { value: v });
  const b = obj(before);
  const a = obj(after);
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])];
  if (keys.length === 0) return null;
  return (
    <table class="diff">
      <thead>
        <tr>
          <th scope="col">field</th>
          <th scope="col">before</th>
          <th scope="col">after</th>
        </tr>
      </thead>
      <tbody>
        {keys.map((k) => {
          const changed = json(b[k]) !== json(a[k]);
          return (
            <tr key={k} class={changed ? 'changed' : ''}>
              <td>{k}</td>
              <td>
                <code>{json(b[k])}</code>
              </td>
              <td>
                <code>{json(a[k])}</code>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function Audit() {
  const [filters, setFilters] = useState<Filters>({});
  const [items, setItems] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [loaded, setLoaded] = useState(false);
  const load = async (f: Filters, cursor?: string) => {
    setError(undefined);
    try {
      const page = await api<{ items: AuditEntry[]; nextCursor: string | null }>('GET', `/audit${q({ ...f, limit: '50', cursor })}`);
      setItems((old) => (cursor === undefined ? page.items : [...old, ...page.items]));
      setNext(page.nextCursor);
    } catch (e) {
      setError(e);
      if (cursor === undefined) setItems([]);
    }
    setLoaded(true);
  };
  if (!loaded) void load(filters);
  return (
    <section aria-labelledby="audit-h">
      <h1 id="audit-h">Audit</h1>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          const d = new FormData(e.currentTarget);
          const f: Filters = {};
          for (const k of ['actor', 'action', 'target', 'under', 'outcome'] as const) {
            const v = String(d.get(k) ?? '').trim();
            if (v !== '') f[k] = v;
          }
          setFilters(f);
          void load(f);
        }}
      >
        <label for="f-actor">actor</label>
        <input id="f-actor" name="actor" placeholder="user id" size={10} />
        <label for="f-action">action</label>
        <input id="f-action" name="action" placeholder="role.grant" size={12} />
        <label for="f-target">target</label>
        <input id="f-target" name="target" placeholder="tenant:acme-sales" size={14} />
        <label for="f-under">under</label>
        <input id="f-under" name="under" placeholder="division:emea" size={12} />
        <label for="f-outcome">outcome</label>
        <select id="f-outcome" name="outcome">
          <option value="">any</option>
          <option>success</option>
          <option>denied</option>
          <option>failed</option>
        </select>
        <button type="submit">Filter</button>
      </form>
      <ProblemView error={error} />
      <table class="audit stack">
        <caption>Newest first</caption>
        <thead>
          <tr>
            <th scope="col">when</th>
            <th scope="col">actor</th>
            <th scope="col">action</th>
            <th scope="col">target</th>
            <th scope="col">outcome</th>
            <th scope="col">change</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.seq} class={`outcome-${e.outcome}`}>
              <td data-label="when">{new Date(e.at).toISOString().replace('T', ' ').slice(0, 19)}</td>
              <td data-label="actor">{e.actor.replace(/^user:/, '')}</td>
              <td data-label="action">
                {e.action}
                {e.count > 1 ? ` ×${e.count}` : ''}
              </td>
              <td data-label="target">{e.target}</td>
              <td data-label="outcome">{e.outcome}</td>
              <td>
                {(e.before !== null || e.after !== null || e.detail !== null) && (
                  <details>
                    <summary>details</summary>
                    <Diff before={e.before} after={e.after} />
                    {e.detail !== null && (
                      <p>
                        <code>{json(e.detail)}</code>
                      </p>
                    )}
                  </details>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {loaded && items.length === 0 && !error && <p>No entries.</p>}
      {next !== null && (
        <button type="button" onClick={() => void load(filters, next)}>
          Older entries
        </button>
      )}
    </section>
  );
}
