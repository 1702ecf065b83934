// One node: what it is, what the caller may do there (asked of the model), who holds
// which role there and above, and its settings with a dry run before any change.
import { useState } from 'preact/hooks';
import { api, myPermissions, nodePath, ref, type DryRun, type EffectiveSetting, type NodeKind, type NodeView, type RoleGrant } from './api.js';
import { below, loadTree, type Tree } from './explorer.js';
import { json, Link, navigate, ProblemView, useLoad } from './ui.js';

interface NodeData {
  node: NodeView;
  perms: Record<string, boolean>;
  tree: Tree;
}

async function loadNode(type: NodeKind, id: string): Promise<NodeData> {
  const r = `${type}:${id}`;
  const [node, perms, tree] = await Promise.all([api<NodeView>('GET', nodePath(r)), myPermissions(r), loadTree()]);
  return { node, perms, tree };
}

/** The visible ancestors of a node, nearest first. */
function ancestors(tree: Tree, node: NodeView): NodeView[] {
  const out: NodeView[] = [];
  let p = node.parent;
  while (p !== null) {
    const n = tree.nodes.get(p);
    if (n === undefined) break;
    out.push(n);
    p = n.parent;
  }
  return out;
}

export function NodePage({ type, id }: { type: NodeKind; id: string }) {
  const { data, error, loading, reload } = useLoad(() => loadNode(type, id), `${type}:${id}`);
  if (loading && !data) return <p aria-live="polite">Loading…</p>;
  if (error) return <ProblemView error={error} />;
  if (!data) return null;
  const { node, perms, tree } = data;
  const up = ancestors(tree, node);
  return (
    <section aria-labelledby="node-h">
      <nav aria-label="Breadcrumb" class="crumbs">
        {[...up].reverse().map((a) => (
          <span key={ref(a)}>
            <Link href={`/console/${a.type}/${encodeURIComponent(a.id)}`}>{a.name}</Link> ›{' '}
          </span>
        ))}
      </nav>
      <h1 id="node-h">
        {node.name} <span class="kind">{node.type}</span> <span class="muted">{node.id}</span>
      </h1>
      <Actions data={data} onChange={reload} />
      <People node={node} perms={perms} up={up} />
      <Settings node={node} perms={perms} />
    </section>
  );
}

function Actions({ data, onChange }: { data: NodeData; onChange: () => void }) {
  const { node, perms, tree } = data;
  const r = ref(node);
  const [error, setError] = useState<unknown>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const [dialog, setDialog] = useState<'move' | 'delete' | undefined>(undefined);
  const [parent, setParent] = useState('');
  const run = async (what: string, f: () => Promise<unknown>) => {
    setError(undefined);
    setDone(undefined);
    try {
      await f();
      setDone(what);
      onChange();
    } catch (e) {
      setError(e);
    }
  };
  const moving = [node, ...below(tree, r)];
  const parents = [...tree.nodes.values()].filter(
    (n) => n.type !== 'tenant' && n.organizationId === node.organizationId && !moving.some((m) => ref(m) === ref(n)) && ref(n) !== node.parent,
  );
  const canCreate = perms.can_create_division || perms.can_create_tenant;
  return (
    <div class="panel">
      <h2>Actions</h2>
      <div aria-live="polite">{done && <p class="ok">{done}</p>}</div>
      <ProblemView error={error} />
      {perms.can_rename && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const name = String(new FormData(e.currentTarget).get('name') ?? '');
            void run(`Renamed to ${name}`, () => api('PATCH', nodePath(r), { name }));
          }}
        >
          <label for="rename">New name</label>
          <input id="rename" name="name" required defaultValue={node.name} />
          <button type="submit">Rename</button>
        </form>
      )}
      {canCreate && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            const kind = String(f.get('kind'));
            const body = { id: String(f.get('id')), name: String(f.get('name')) };
            void run(`Created ${kind} ${body.id}`, () => api('POST', `${nodePath(r)}/${kind === 'tenant' ? 'tenants' : 'divisions'}`, body));
          }}
        >
          <label for="create-kind">Create</label>
          <select id="create-kind" name="kind">
            {perms.can_create_division && <option value="division">division</option>}
            {perms.can_create_tenant && <option value="tenant">tenant</option>}
          </select>
          <label for="create-id">id</label>
          <input id="create-id" name="id" required pattern="[A-Za-z0-9][A-Za-z0-9_\-]{0,63}" />
          <label for="create-name">name</label>
          <input id="create-name" name="name" required />
          <button type="submit">Create</button>
        </form>
      )}
      {perms.can_move && (
        <div class="row">
          <label for="move-parent">Move under</label>
          <select id="move-parent" value={parent} onChange={(e) => setParent(e.currentTarget.value)}>
            <option value="">choose a parent…</option>
            {parents.map((p) => (
              <option key={ref(p)} value={ref(p)}>
                {p.name} ({ref(p)})
              </option>
            ))}
          </select>
          <button type="button" disabled={parent === ''} onClick={() => setDialog('move')}>
            Move…
          </button>
        </div>
      )}
      {perms.can_delete && (
        <div class="row">
          <button type="button" class="danger" onClick={() => setDialog('delete')}>
            Delete…
          </button>
        </div>
      )}
      {!perms.can_rename && !canCreate && !perms.can_move && !perms.can_delete && <p class="muted">You may not change this {node.type}.</p>}
      {dialog === 'move' && (
        <Confirm
          title={`Move ${node.name} under ${parent}?`}
          confirm="Move"
          onCancel={() => setDialog(undefined)}
          onConfirm={() => {
            setDialog(undefined);
            void run(`Moved under ${parent}`, () => api('POST', `${nodePath(r)}/move`, { parent }));
          }}
        >
          <p>These move with it:</p>
          <ul>
            {moving.map((m) => (
              <li key={ref(m)}>{`${m.type} ${m.name} (${m.id})`}</li>
            ))}
          </ul>
        </Confirm>
      )}
      {dialog === 'delete' && (
        <Confirm
          title={`Delete ${node.type} ${node.name}?`}
          confirm="Delete"
          onCancel={() => setDialog(undefined)}
          onConfirm={() => {
            setDialog(undefined);
            void run(`Deleted ${r}`, async () => {
              await api('DELETE', nodePath(r));
              navigate('/console/');
            });
          }}
        >
          <p>
            This removes {r}, every role granted on it and its settings; its id can never be used again.
            {below(tree, r).length > 0 && ` It still has ${below(tree, r).length} node(s) below it: the API refuses the delete until they are gone.`}
          </p>
        </Confirm>
      )}
    </div>
  );
}

function Confirm(props: { title: string; confirm: string; onCancel: () => void; onConfirm: () => void; children: preact.ComponentChildren }) {
  return (
    <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-h">
      <h3 id="dialog-h">{props.title}</h3>
      {props.children}
      <div class="row">
        <button type="button" class="danger" onClick={props.onConfirm}>
          {props.confirm}
        </button>
        <button type="button" onClick={props.onCancel} autoFocus>
          Cancel
        </button>
      </div>
    </div>
  );
}

interface PeopleData {
  direct: RoleGrant[];
  inherited: { from: NodeView; grants: RoleGrant[] }[];
}

async function loadPeople(node: NodeView, up: NodeView[]): Promise<PeopleData> {
  const direct = (await api<{ items: RoleGrant[] }>('GET', `${nodePath(ref(node))}/roles?limit=100`)).items;
  // Above: only where the model lets the caller list roles (no refused reads).
  const inherited = await Promise.all(
    up.map(async (a) => {
      const p = await myPermissions(ref(a));
      if (!p.can_assign_admin) return undefined;
      const grants = (await api<{ items: RoleGrant[] }>('GET', `${nodePath(ref(a))}/roles?limit=100`)).items.filter((g) => g.role === 'admin');
      return { from: a, grants };
    }),
  );
  return { direct, inherited: inherited.filter((x): x is { from: NodeView; grants: RoleGrant[] } => x !== undefined) };
}

function People({ node, perms, up }: { node: NodeView; perms: Record<string, boolean>; up: NodeView[] }) {
  const r = ref(node);
  const canList = perms.can_assign_admin === true;
  const { data, error, reload } = useLoad(() => (canList ? loadPeople(node, up) : Promise.resolve(undefined)), `people:${r}:${canList}`);
  const [actionError, setActionError] = useState<unknown>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const roles = (['admin', 'member'] as const).filter((role) => perms[`can_assign_${role}`]);
  const change = async (method: 'PUT' | 'DELETE', role: string, user: string) => {
    setActionError(undefined);
    setDone(undefined);
    try {
      await api(method, `${nodePath(r)}/roles/${role}/${encodeURIComponent(user)}`);
      setDone(`${method === 'PUT' ? 'Granted' : 'Revoked'} ${role} ${method === 'PUT' ? 'to' : 'from'} ${user}`);
      reload();
    } catch (e) {
      setActionError(e);
    }
  };
  return (
    <div class="panel">
      <h2>People and roles</h2>
      {!canList && <p class="muted">Only admins of this {node.type} see who holds roles here.</p>}
      <ProblemView error={error} />
      <div aria-live="polite">{done && <p class="ok">{done}</p>}</div>
      <ProblemView error={actionError} />
      {data && (
        <table class="stack">
          <caption>Roles at {r}</caption>
          <thead>
            <tr>
              <th scope="col">user</th>
              <th scope="col">role</th>
              <th scope="col">held</th>
              <th scope="col">
                <span class="sr-only">actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.direct.map((g) => (
              <tr key={`${g.user}-${g.role}`}>
                <td data-label="user">{g.user.replace(/^user:/, '')}</td>
                <td data-label="role">{g.role}</td>
                <td data-label="held">here</td>
                <td>
                  {perms[`can_assign_${g.role}`] && (
                    <button
                      type="button"
                      aria-label={`Revoke ${g.role} from ${g.user.replace(/^user:/, '')}`}
                      onClick={() => void change('DELETE', g.role, g.user.replace(/^user:/, ''))}
                    >
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {data.inherited.flatMap(({ from, grants }) =>
              grants.map((g) => (
                <tr key={`${ref(from)}-${g.user}`} class="inherited">
                  <td data-label="user">{g.user.replace(/^user:/, '')}</td>
                  <td data-label="role">{g.role}</td>
                  <td data-label="held">inherited from {ref(from)}</td>
                  <td />
                </tr>
              )),
            )}
          </tbody>
        </table>
      )}
      {roles.length > 0 && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            void change('PUT', String(f.get('role')), String(f.get('user')).replace(/^user:/, ''));
          }}
        >
          <label for="grant-user">Grant</label>
          <input id="grant-user" name="user" required placeholder="user id" pattern="(user:)?[A-Za-z0-9][A-Za-z0-9_@.\|\-]{0,127}" />
          <label for="grant-role">role</label>
          <select id="grant-role" name="role">
            {roles.map((role) => (
              <option key={role} value={role}>
                {role === 'member' ? 'member (tenant user)' : 'admin'}
              </option>
            ))}
          </select>
          <button type="submit">Grant</button>
        </form>
      )}
    </div>
  );
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function Settings({ node, perms }: { node: NodeView; perms: Record<string, boolean> }) {
  const r = ref(node);
  const canRead = perms.can_read_settings === true;
  const canWrite = perms.can_write_settings === true;
  const { data, error, reload } = useLoad(
    () => (canRead ? api<{ items: EffectiveSetting[] }>('GET', `${nodePath(r)}/settings`) : Promise.resolve(undefined)),
    `settings:${r}:${canRead}`,
  );
  const [editing, setEditing] = useState<{ key: string; text: string } | undefined>(undefined);
  const [preview, setPreview] = useState<DryRun | undefined>(undefined);
  const [problem, setProblem] = useState<unknown>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const dryRun = async () => {
    if (!editing) return;
    setProblem(undefined);
    setPreview(undefined);
    try {
      const doc = await api<{ entries: Record<string, { entry: unknown }> }>('GET', `${nodePath(r)}/settings/document`);
      const settings = Object.fromEntries(Object.entries(doc.entries).map(([k, v]) => [k, v.entry]));
      settings[editing.key] = { ...((settings[editing.key] as object | undefined) ?? {}), set: parseValue(editing.text) };
      setPreview(await api<DryRun>('POST', `${nodePath(r)}/settings/dry-run`, { settings }));
    } catch (e) {
      setProblem(e);
    }
  };
  const apply = async () => {
    if (!editing) return;
    setProblem(undefined);
    try {
      await api('PUT', `${nodePath(r)}/settings/document/${encodeURIComponent(editing.key)}`, { set: parseValue(editing.text) });
      setDone(`Set ${editing.key}`);
      setEditing(undefined);
      setPreview(undefined);
      reload();
    } catch (e) {
      setProblem(e);
    }
  };
  return (
    <div class="panel">
      <h2>Settings</h2>
      {!canRead && <p class="muted">You may not read the settings here.</p>}
      <ProblemView error={error} />
      <div aria-live="polite">{done && <p class="ok">{done}</p>}</div>
      {data && (
        <table class="stack">
          <caption>Effective settings at {r}</caption>
          <thead>
            <tr>
              <th scope="col">key</th>
              <th scope="col">value</th>
              <th scope="col">from</th>
              <th scope="col">lock</th>
              <th scope="col">
                <span class="sr-only">actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.items.map((s) => (
              <tr key={s.key}>
                <td data-label="key">
                  <code>{s.key}</code>
                </td>
                <td data-label="value">
                  <code>{json(s.value)}</code>
                </td>
                <td data-label="from">{s.source}</td>
                <td data-label="lock">{s.locked ? `locked by ${s.locked.by}` : ''}</td>
                <td>
                  {canWrite && !s.locked?.above && (
                    <button type="button" aria-label={`Edit ${s.key}`} onClick={() => (setEditing({ key: s.key, text: json(s.value) }), setPreview(undefined))}>
                      Edit
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void dryRun();
          }}
        >
          <label for="setting-value">{editing.key} =</label>
          <input id="setting-value" value={editing.text} onInput={(e) => setEditing({ ...editing, text: e.currentTarget.value })} />
          <button type="submit">Preview</button>
          <button type="button" onClick={() => setEditing(undefined)}>
            Cancel
          </button>
        </form>
      )}
      <ProblemView error={problem} />
      {preview && (
        <div class="dialog" aria-labelledby="preview-h">
          <h3 id="preview-h">Dry run: what changes</h3>
          {preview.changes.length === 0 && <p>Nothing changes at or below {r}.</p>}
          <ul>
            {preview.changes.flatMap((n) =>
              n.changes.map((c) => (
                <li key={`${n.node}-${c.key}`}>
                  {n.node}: <code>{c.key}</code> {json(c.before)} → {json(c.after)} <span class="muted">({c.sourceBefore} → {c.sourceAfter})</span>
                </li>
              )),
            )}
          </ul>
          {preview.overriddenByLock.length > 0 && (
            <p>Overridden by the new lock: {preview.overriddenByLock.map((o) => `${o.node} ${o.key}`).join(', ')}</p>
          )}
          <button type="button" onClick={() => void apply()}>
            Apply
          </button>
        </div>
      )}
    </div>
  );
}
