// A real nginx (Debian's /usr/sbin/nginx, with auth_request) on a free loopback port,
// run as one process (`master_process off`, `daemon off`) from a generated config in a
// temporary directory: pid, logs and temp paths all there, nothing of the system's.
// forwardAuthConfig() is the configuration docs/forward-auth.md describes: nginx asks
// tiergate's decision endpoint, copies the assertion upstream on 2xx, and refuses otherwise.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { startChild, waitUntilReady } from '../../src/stack/child.js';
import { owned, tempDir } from './cleanup.js';
import { freeListenPort } from './listen-port.js';

/** The nginx binary: NGINX_BIN, else Debian's, else the one on PATH. */
export function nginxBinary(): string {
  return process.env.NGINX_BIN ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx');
}

/** Why nginx cannot be used here (missing, or built without auth_request); undefined when it can. */
export function nginxProblem(): string | undefined {
  const r = spawnSync(nginxBinary(), ['-V'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `nginx is not installed (${nginxBinary()}): install it (Debian: apt-get install nginx)`;
  // `nginx -V` writes its build options to stderr.
  if (!`${r.stderr}${r.stdout}`.includes('--with-http_auth_request_module')) return 'nginx was built without the auth_request module (--with-http_auth_request_module)';
  return undefined;
}

export interface RunningNginx {
  url: string;
  port: number;
  dir: string;
  /** The error log so far (auth_request's "unexpected status" lines land here). */
  errorLog(): string;
  stop(): Promise<void>;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx with `http` (directives inside `http { }`, e.g. upstreams) and `server`
 * (directives inside the one `server { }`, which listens on a free port).
 */
export async function startNginx(opts: { http?: string; server: string }): Promise<RunningNginx> {
  const problem = nginxProblem();
  if (problem !== undefined) throw new Error(problem);
  const dir = tempDir('tiergate-nginx-');
  const port = await freeListenPort();
  const conf = `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 512; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  ${opts.http ?? ''}
  server {
    listen 127.0.0.1:${port};
    location = /__nginx_ready { return 204; }
    ${opts.server}
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  // -e: the error log from the first line on (else nginx tries the system's log first).
  const child = startChild('nginx', nginxBinary(), ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const stop = owned(() => child.stop());
  await waitUntilReady(child, () => listening(port), 10_000);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    errorLog: () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''),
    stop,
  };
}

export interface ForwardAuthConfig {
  /** tiergate's port (its decision endpoint is /forward-auth/nginx). */
  gatewayPort: number;
  /** The upstream nginx forwards allowed requests to. */
  upstreamPort: number;
  /** Local address nginx asks tiergate from (`proxy_bind`), so tests can tell nginx from a direct client. */
  bind?: string;
  /** The headers nginx passes the original request in (default X-Original-Method / X-Original-URI). */
  methodHeader?: string;
  uriHeader?: string;
}

/**
 * The configuration of docs/forward-auth.md: every request under /api/ is asked about
 * (the original method and raw $request_uri in two headers, the client's Authorization
 * passed on, no body); on 2xx the assertion and subject are set on the request upstream
 * (replacing any the client sent); 401/403 are the client's answer; anything else is
 * nginx's 500. X-Tiergate-Status shows the decision's status on every answer.
 */
export function forwardAuthConfig(o: ForwardAuthConfig): { http: string; server: string } {
  return {
    http: `
  upstream tiergate { server 127.0.0.1:${o.gatewayPort}; keepalive 8; }
  upstream app { server 127.0.0.1:${o.upstreamPort}; keepalive 8; }`,
    server: `
    location /api/ {
      auth_request /_tiergate;
      auth_request_set $tg_status $upstream_status;
      auth_request_set $tg_assertion $upstream_http_x_tiergate_assertion;
      auth_request_set $tg_subject $upstream_http_x_tiergate_subject;
      auth_request_set $tg_deny_reason $upstream_http_x_tiergate_deny_reason;
      add_header X-Tiergate-Status $tg_status always;
      add_header X-Tiergate-Deny-Reason $tg_deny_reason always;
      proxy_set_header X-Tiergate-Assertion $tg_assertion;
      proxy_set_header X-Tiergate-Subject $tg_subject;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
    }
    location = /_tiergate {
      internal;
      ${o.bind ? `proxy_bind ${o.bind};` : ''}
      proxy_pass http://tiergate/forward-auth/nginx;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header ${o.methodHeader ?? 'X-Original-Method'} $request_method;
      proxy_set_header ${o.uriHeader ?? 'X-Original-URI'} $request_uri;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`,
  };
}
