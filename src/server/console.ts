// The web console under /console: the bundle `vite build` wrote into dist/console
// (sources in console/), served from memory with a strict Content-Security-Policy
// (this origin only, plus the identity provider's for the token exchange), and
// /console/config.json telling the page how to sign in. Everything the console
// shows comes from the admin API with the signed-in user's token; this module
// serves static files and the sign-in settings only.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { Hono } from 'hono';
import type { Config } from '../config.js';
import { Problem } from '../shared/problem.js';
import { REPO_ROOT } from '../shared/repo-root.js';
import { parse } from 'yaml';
import { CONSOLE_PREFIX as CONSOLE_PATH } from '../gateway/app.js';
import { DEV_CONSOLE_CLIENT_ID, DEV_OIDC_PATH } from '../gateway/dev-issuer-oidc.js';
import type { GatewayEnv } from '../gateway/types.js';

export const CONSOLE_DIST_DIR = join(REPO_ROOT, 'dist', 'console');

/** How the page signs in: the dev issuer's or a configured provider's code + PKCE flow, or not at all. */
export interface ConsoleSignIn {
  mode: 'dev' | 'oidc' | 'off';
  /** The issuer identifier (discovery at `<issuer>/.well-known/openid-configuration`); for `dev` the page uses its own origin + /dev-issuer. */
  issuer: string | null;
  clientId: string;
  scope: string;
}

export function consoleSignIn(config: Pick<Config, 'CONSOLE_OIDC_ISSUER' | 'CONSOLE_OIDC_CLIENT_ID' | 'CONSOLE_OIDC_SCOPE'>, devIssuer: boolean): ConsoleSignIn {
  if (config.CONSOLE_OIDC_ISSUER !== undefined) {
    return { mode: 'oidc', issuer: config.CONSOLE_OIDC_ISSUER, clientId: config.CONSOLE_OIDC_CLIENT_ID, scope: config.CONSOLE_OIDC_SCOPE };
  }
  if (devIssuer) return { mode: 'dev', issuer: null, clientId: DEV_CONSOLE_CLIENT_ID, scope: 'tiergate' };
  return { mode: 'off', issuer: null, clientId: config.CONSOLE_OIDC_CLIENT_ID, scope: config.CONSOLE_OIDC_SCOPE };
}

/**
 * The users a hierarchy file names (`admins`, `members` at any depth), in the order
 * they appear: what the development issuer's sign-in page offers. None when the file
 * is missing or unreadable.
 */
export function hierarchyUsers(file: string = join(REPO_ROOT, 'demo', 'hierarchy.yaml')): string[] {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  const users: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if ((k === 'admins' || k === 'members') && Array.isArray(child)) {
          for (const u of child) if (typeof u === 'string' && !users.includes(u)) users.push(u);
        } else if (k !== 'settings') visit(child);
      }
    }
  };
  visit(doc);
  return users;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  body: Uint8Array;
  type: string;
}

/** Every file of the bundle by its URL path below /console (e.g. `/assets/index-abc.js`); only these are ever served. */
function loadBundle(dir: string): Map<string, Asset> | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const files = new Map<string, Asset>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile() && TYPES[extname(e.name)] !== undefined && statSync(full).size < 20 * 1024 * 1024) {
        files.set(`/${relative(dir, full).split(sep).join('/')}`, { body: readFileSync(full), type: TYPES[extname(e.name)]! });
      }
    }
  };
  walk(dir);
  return files;
}

/** The page's Content-Security-Policy: nothing from another origin except the identity provider's endpoints. */
export function consoleCsp(signIn: ConsoleSignIn): string {
  const idp = signIn.mode === 'oidc' && signIn.issuer !== null ? ` ${new URL(signIn.issuer).origin}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self'${idp}`,
    `form-action 'self'${idp}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ].join('; ');
}

export interface ConsoleAppOptions {
  signIn: ConsoleSignIn;
  /** Where the bundle is (default dist/console of the repository). */
  distDir?: string;
}

export function consoleApp(opts: ConsoleAppOptions): Hono<GatewayEnv> {
  const dir = opts.distDir ?? CONSOLE_DIST_DIR;
  const csp = consoleCsp(opts.signIn);
  const security = {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    // The sign-in callback URL carries the one-time code: never in a Referer.
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
  };
  let bundle: Map<string, Asset> | undefined;
  const files = () => (bundle ??= loadBundle(dir));
  const config = JSON.stringify({ ...opts.signIn, devIssuerPath: DEV_OIDC_PATH, adminApi: '/admin/v1', apiDocs: '/admin/v1/docs' });

  const app = new Hono<GatewayEnv>();
  app.get('/config.json', (c) => c.body(config, 200, { ...security, 'content-type': 'application/json', 'cache-control': 'no-store' }));
  app.get('*', (c) => {
    const all = files();
    if (all === undefined) {
      throw new Problem(503, 'not-ready', 'Console not built', { detail: 'the console bundle (dist/console) is missing: run npm run build' });
    }
    const sub = c.req.path.slice(CONSOLE_PATH.length) || '/';
    const asset = all.get(sub);
    if (asset !== undefined && sub !== '/index.html') {
      // Vite names assets by content hash: they never change under one name.
      const cache = sub.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
      return c.body(asset.body.slice(), 200, { ...security, 'content-type': asset.type, 'cache-control': cache });
    }
    if (sub.startsWith('/assets/')) throw new Problem(404, 'not-found', 'Not Found', { detail: 'no such console asset' });
    // Every other path is one of the page's own views.
    const index = all.get('/index.html')!;
    return c.body(index.body.slice(), 200, { ...security, 'content-type': index.type, 'cache-control': 'no-cache' });
  });
  return app;
}
