// The hierarchy the signed-in admin may see, nested, with tenant counts.
import { visible, ref, type NodeView } from './api.js';
import { Link, ProblemView, useLoad } from './ui.js';

export interface Tree {
  nodes: Map<string, NodeView>;
  children: Map<string, NodeView[]>;
  roots: NodeView[];
}

export async function loadTree(): Promise<Tree> {
  const [orgs, divisions, tenants] = await Promise.all([visible('organization'), visible('division'), visible('tenant')]);
  const all = [...orgs, ...divisions, ...tenants];
  const nodes = new Map(all.map((n) => [ref(n), n]));
  const children = new Map<string, NodeView[]>();
  const roots: NodeView[] = [];
  for (const n of all) {
    if (n.parent !== null && nodes.has(n.parent)) {
      const list = children.get(n.parent) ?? [];
      list.push(n);
      children.set(n.parent, list);
    } else roots.push(n);
  }
  const order = (a: NodeView, b: NodeView) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'division' ? -1 : 1);
  for (const list of children.values()) list.sort(order);
  roots.sort(order);
  return { nodes, children, roots };
}

/** Every node below `r` (not `r` itself), depth first. */
export function below(tree: Tree, r: string): NodeView[] {
  const out: NodeView[] = [];
  for (const c of tree.children.get(r) ?? []) out.push(c, ...below(tree, ref(c)));
  return out;
}

export function tenantCount(tree: Tree, r: string): number {
  return below(tree, r).filter((n) => n.type === 'tenant').length;
}

function Branch({ tree, node }: { tree: Tree; node: NodeView }) {
  const r = ref(node);
  const kids = tree.children.get(r) ?? [];
  return (
    <li>
      <Link href={`/console/${node.type}/${encodeURIComponent(node.id)}`} class={`node ${node.type}`}>
        <span class="kind">{node.type}</span> {node.name} <span class="muted">({node.id})</span>
      </Link>
      {node.type !== 'tenant' && <span class="count"> · {tenantCount(tree, r)} tenants</span>}
      {kids.length > 0 && (
        <ul>
          {kids.map((k) => (
            <Branch key={ref(k)} tree={tree} node={k} />
          ))}
        </ul>
      )}
    </li>
  );
}

export function Explorer() {
  const { data, error, loading } = useLoad(loadTree, 'tree');
  return (
    <section aria-labelledby="explorer-h">
      <h1 id="explorer-h">Hierarchy</h1>
      <p class="muted">Everything you may see, as the authorization model answers it.</p>
      <ProblemView error={error} />
      {loading && <p aria-live="polite">Loading…</p>}
      {data && data.roots.length === 0 && <p>You have no role on any organization, division or tenant.</p>}
      {data && (
        <ul class="tree" aria-label="Hierarchy">
          {data.roots.map((n) => (
            <Branch key={ref(n)} tree={data} node={n} />
          ))}
        </ul>
      )}
    </section>
  );
}
