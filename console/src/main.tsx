// The tiergate console: sign in, then the hierarchy, people and roles, settings,
// why, audit. All data comes from the admin API with the user's own token.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setToken, whenUnauthorized, type NodeKind } from './api.js';
import { Audit } from './audit.js';
import { beginSignIn, CALLBACK_PATH, completeSignIn, type SignInConfig } from './auth.js';
import { Explorer } from './explorer.js';
import { NodePage } from './node.js';
import { Link, navigate, ProblemView, usePath } from './ui.js';
import { Why } from './why.js';
import './style.css';

interface ConsoleConfig extends SignInConfig {
  apiDocs: string;
}

function Page({ path }: { path: string }) {
  const m = /^\/console\/(organization|division|tenant)\/([^/]+)$/.exec(path);
  if (m) return <NodePage key={path} type={m[1] as NodeKind} id={decodeURIComponent(m[2]!)} />;
  if (path === '/console/why') return <Why />;
  if (path === '/console/audit') return <Audit />;
  return <Explorer />;
}

function App() {
  const path = usePath();
  const [config, setConfig] = useState<ConsoleConfig | undefined>(undefined);
  const [user, setUser] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(true);

  useEffect(() => {
    whenUnauthorized(() => {
      setToken(undefined);
      setUser(undefined);
    });
    (async () => {
      const cfg = (await (await fetch('/console/config.json', { cache: 'no-store' })).json()) as ConsoleConfig;
      setConfig(cfg);
      if (location.pathname === CALLBACK_PATH) {
        const token = await completeSignIn(cfg);
        setToken(token);
        const me = await api<{ subject: string }>('GET', '/me');
        setUser(me.subject.replace(/^user:/, ''));
        navigate('/console/');
      }
    })().then(
      () => setBusy(false),
      (e: unknown) => {
        setError(e);
        setBusy(false);
      },
    );
  }, []);

  const current = (p: string) => (path === p || (p === '/console/' && /^\/console\/(organization|division|tenant)\//.test(path)) ? 'page' : undefined);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <span class="brand">tiergate console</span>
        {user !== undefined && (
          <nav aria-label="Main">
            <Link href="/console/">
              <span aria-current={current('/console/')}>Hierarchy</span>
            </Link>
            <Link href="/console/why">
              <span aria-current={current('/console/why')}>Why</span>
            </Link>
            <Link href="/console/audit">
              <span aria-current={current('/console/audit')}>Audit</span>
            </Link>
            {config && (
              <a href={config.apiDocs} target="_blank" rel="noopener noreferrer">
                API reference
              </a>
            )}
          </nav>
        )}
        {user !== undefined && (
          <span class="who">
            Signed in as <strong data-testid="user">{user}</strong>{' '}
            <button
              type="button"
              onClick={() => {
                setToken(undefined);
                setUser(undefined);
              }}
            >
              Sign out
            </button>
          </span>
        )}
      </header>
      <main id="main">
        <ProblemView error={error} />
        {busy && <p aria-live="polite">Loading…</p>}
        {!busy && user === undefined && config && (
          <section aria-labelledby="signin-h" class="signin">
            <h1 id="signin-h">Sign in</h1>
            {config.mode === 'off' ? (
              <p>Sign-in is not configured: set CONSOLE_OIDC_ISSUER (docs/console.md).</p>
            ) : (
              <>
                <p>{config.mode === 'dev' ? 'Development issuer: you will pick a demo user.' : `Identity provider: ${config.issuer}`}</p>
                <button type="button" onClick={() => void beginSignIn(config).catch(setError)}>
                  Sign in
                </button>
              </>
            )}
          </section>
        )}
        {!busy && user !== undefined && <Page path={path} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
