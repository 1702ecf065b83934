// "Why may (or may not) this user do this?": a permission on an object, or a request
// line the route policy maps to one; the answer and the role grants behind it.
import { useState } from 'preact/hooks';
import { api, type CheckResult } from './api.js';
import { ProblemView } from './ui.js';

const PERMISSIONS = [
  'can_view',
  'can_read_operational',
  'can_operate',
  'can_manage_resources',
  'can_read_configuration',
  'can_write_configuration',
  'can_read_reports',
  'can_assign_admin',
  'can_assign_member',
  'can_read_settings',
  'can_write_settings',
  'can_read_audit',
  'can_rename',
  'can_move',
  'can_delete',
  'can_create_division',
  'can_create_tenant',
];

export function Why() {
  const [mode, setMode] = useState<'request' | 'permission'>('request');
  const [result, setResult] = useState<CheckResult | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const ask = async (path: string, body: unknown) => {
    setError(undefined);
    setResult(undefined);
    try {
      setResult(await api<CheckResult>('POST', path, body));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="why-h">
      <h1 id="why-h">Why</h1>
      <fieldset class="row">
        <legend>Ask about</legend>
        <label>
          <input type="radio" name="mode" checked={mode === 'request'} onChange={() => setMode('request')} /> a request
        </label>
        <label>
          <input type="radio" name="mode" checked={mode === 'permission'} onChange={() => setMode('permission')} /> a permission on an object
        </label>
      </fieldset>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const user = String(f.get('user'));
          if (mode === 'request') {
            const line = String(f.get('line')).trim();
            const [method = '', target = ''] = line.split(/\s+/, 2);
            void ask('/check/request', { user, method: method.toUpperCase(), target });
          } else {
            void ask('/check', { user, permission: String(f.get('permission')), object: String(f.get('object')).trim() });
          }
        }}
      >
        <div class="row">
          <label for="why-user">User</label>
          <input id="why-user" name="user" required placeholder="e.g. tom" />
        </div>
        {mode === 'request' ? (
          <div class="row">
            <label for="why-line">Request</label>
            <input id="why-line" name="line" required size={50} placeholder="GET /api/v1/tenants/acme-sales/agents" />
          </div>
        ) : (
          <div class="row">
            <label for="why-permission">Permission</label>
            <select id="why-permission" name="permission">
              {PERMISSIONS.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
            <label for="why-object">Object</label>
            <input id="why-object" name="object" required placeholder="tenant:acme-sales" />
          </div>
        )}
        <button type="submit">Explain</button>
      </form>
      <ProblemView error={error} />
      {result && (
        <div class="panel" aria-live="polite">
          <h2 class={result.allowed ? 'ok' : 'denied'}>
            {result.allowed ? 'Allowed' : 'Not allowed'}: {result.user.replace(/^user:/, '')} {result.permission} on {result.object}
          </h2>
          {result.request && (
            <p>
              {result.request.method} {result.request.path} matches rule <code>{result.request.rule}</code>: {result.request.permission} on {result.request.object}
            </p>
          )}
          {result.missing && <p>Missing permission {result.missing}.</p>}
          {result.reasons.length > 0 && (
            <ol class="reasons">
              {result.reasons.map((r, i) => (
                <li key={i}>
                  role <strong>{r.role}</strong> {r.on ? `on ${r.on}` : ''} — {r.via}
                  {r.path.length > 1 && <span class="muted"> ({r.path.join(' → ')})</span>}
                </li>
              ))}
            </ol>
          )}
        </div>
      )}
    </section>
  );
}
