// Small shared pieces: problem details, loading state, a tiny router.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api.js';

let notify: (() => void) | undefined;
export function navigate(path: string): void {
  history.pushState(null, '', path);
  notify?.();
}
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    notify = () => setPath(location.pathname);
    const onPop = () => setPath(location.pathname);
    addEventListener('popstate', onPop);
    return () => removeEventListener('popstate', onPop);
  }, []);
  return path;
}

export function Link(props: { href: string; children: ComponentChildren; class?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

/** A refusal as the API explained it: title, status, detail, the fields it names, the request id. */
export function ProblemView({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  if (error instanceof ApiError) {
    const p = error.problem;
    return (
      <div class="problem" role="alert">
        <strong>
          {p.title ?? 'Error'} ({error.status})
        </strong>
        {p.detail && <p>{p.detail}</p>}
        {p['invalid-params'] && (
          <ul>
            {p['invalid-params'].map((ip) => (
              <li key={ip.name}>
                <code>{ip.name}</code>: {ip.reason}
              </li>
            ))}
          </ul>
        )}
        {p.requestId && <p class="muted">request id {p.requestId}</p>}
      </div>
    );
  }
  return (
    <div class="problem" role="alert">
      <strong>Error</strong>
      <p>{error instanceof Error ? error.message : String(error)}</p>
    </div>
  );
}

/** Loads once per key; `reload` runs it again. */
export function useLoad<T>(load: () => Promise<T>, key: string): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load().then(
      (data) => live && setState({ data, error: undefined, loading: false }),
      (error: unknown) => live && setState({ data: undefined, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [key, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

export function json(v: unknown): string {
  return v === undefined ? '—' : JSON.stringify(v);
}
