// The admin API's reference page at /admin/v1/docs: Swagger UI from the swagger-ui-dist
// package on this machine (its files are served from here, read once), never from a
// CDN, under a Content-Security-Policy that allows this origin only.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Hono } from 'hono';
import type { RequestEnv } from '../authz/types.js';

const require = createRequire(import.meta.url);

/** Swagger UI styles itself with inline style attributes; scripts come from this origin only. */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const FILES = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
} as const;

/** Registers GET {base}/docs and its assets on the admin app (before authentication: it describes the API, holds no data). */
export function registerDocsPage(app: Hono<RequestEnv>, basePath: string): void {
  let dist: string | undefined;
  const cache = new Map<string, Uint8Array>();
  const file = (name: keyof typeof FILES): Uint8Array => {
    dist ??= dirname(require.resolve('swagger-ui-dist/package.json'));
    let body = cache.get(name);
    if (body === undefined) cache.set(name, (body = readFileSync(join(dist, name))));
    return body;
  };
  const headers = (type: string, cacheControl: string) => ({
    'content-type': type,
    'cache-control': cacheControl,
    'content-security-policy': DOCS_CSP,
    'x-content-type-options': 'nosniff',
  });
  const init = `window.ui = SwaggerUIBundle({ url: ${JSON.stringify(`${basePath}/openapi.json`)}, dom_id: '#swagger-ui', deepLinking: true, persistAuthorization: false });\n`;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>tiergate admin API</title><link rel="stylesheet" href="${basePath}/docs/swagger-ui.css"></head>
<body><noscript><p>The reference needs JavaScript; the document itself: <a href="${basePath}/openapi.json">${basePath}/openapi.json</a></p></noscript><div id="swagger-ui"></div><script src="${basePath}/docs/swagger-ui-bundle.js"></script><script src="${basePath}/docs/init.js"></script></body></html>`;

  app.get('/docs', (c) => c.body(html, 200, headers('text/html; charset=utf-8', 'no-cache')));
  app.get('/docs/init.js', (c) => c.body(init, 200, headers('text/javascript; charset=utf-8', 'no-cache')));
  for (const name of Object.keys(FILES) as (keyof typeof FILES)[]) {
    app.get(`/docs/${name}`, (c) => c.body(file(name).slice(), 200, headers(FILES[name], 'public, max-age=3600')));
  }
}
