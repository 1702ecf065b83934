// A Node service as a child process: spawned with given node arguments and
// environment, ready once it has said where it listens and that address answers.
import { startChild, waitUntilReady, type ChildOptions, type ManagedChild } from './child.js';

export interface NodeServiceOptions extends ChildOptions {
  /** The node arguments that run the service (flags, then the script). */
  nodeArgs: readonly string[];
  env: NodeJS.ProcessEnv;
  /**
   * Where the service listens, read from one line of its stdout (undefined: not that line).
   * Without it, `url` must be given: the address is known before the start.
   */
  readyUrl?: (line: string) => string | undefined;
  url?: string;
  /** Path probed at the URL until it answers 2xx; without it the URL alone means ready. */
  healthPath?: string;
  timeoutMs: number;
  /** Called with the child as soon as it is spawned, before it is ready (to own its cleanup). */
  onSpawn?: (child: ManagedChild) => void;
}

export interface NodeService {
  url: string;
  child: ManagedChild;
}

/**
 * Spawns `node …nodeArgs` and resolves once it is ready. When it exits first or
 * `timeoutMs` passes, it is stopped and the error carries its last output.
 */
export async function startNodeService(name: string, opts: NodeServiceOptions): Promise<NodeService> {
  const { readyUrl } = opts;
  if (!readyUrl && opts.url === undefined) throw new Error(`${name}: either readyUrl or url is required`);
  const child = startChild(name, process.execPath, opts.nodeArgs, opts.env, opts);
  opts.onSpawn?.(child);
  let url = opts.url;
  if (readyUrl) {
    let pending = '';
    const onData = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      let nl: number;
      while (url === undefined && (nl = pending.indexOf('\n')) >= 0) {
        url = readyUrl(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      if (url !== undefined) child.process.stdout?.off('data', onData);
    };
    child.process.stdout?.on('data', onData);
  }
  const { healthPath } = opts;
  await waitUntilReady(
    child,
    async () => {
      if (url === undefined) return false;
      if (healthPath === undefined) return true;
      const res = await fetch(`${url}${healthPath}`, { signal: AbortSignal.timeout(2000) });
      return res.ok;
    },
    opts.timeoutMs,
  );
  return { url: url!, child };
}
