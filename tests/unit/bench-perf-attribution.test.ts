// The bench's reading of `perf script` call chains (load/lib/perf-attribution.ts). The
// frames are shortened from a real `npm run bench -- --perf` recording of the gateway.
import { describe, expect, it } from 'vitest';
import { attribute, categoryOf } from '../../load/lib/perf-attribution.js';

const SAMPLES = `node 18095 
\t         150d507 Builtins_LoadIC_Megamorphic (/usr/bin/node)
\t    7f93e432d221 JS:*Readable.on node:internal/streams/readable:1127:33 (/tmp/perf-18095.map)
\t    7f93e43ae734 JS:*stream /work/main/node_modules/http-proxy/lib/http-proxy/passes/web-incoming.js:100:26 (/tmp/perf-18095.map)

node 18095 
\t          c7e636 v8::internal::Runtime_DeleteProperty (/usr/bin/node)
\t    7f93e4300001 JS:* file:///work/main/src/gateway/forward.ts:1:5457 (/tmp/perf-18095.map)
\t    7f93e43abeea JS:*HttpProxyMiddleware.middleware /work/main/node_modules/http-proxy-middleware/dist/http-proxy-middleware.js:18:28 (/tmp/perf-18095.map)

node 18095 
\t ffffffff81a0 finish_task_switch.isra.0 ([kernel.kallsyms])
\t ffffffff81b0 schedule ([kernel.kallsyms])
\t         14b8865 uv__read (/usr/bin/node)

node 18096 
\t          d00001 v8::internal::Scavenger::ScavengePage (/usr/bin/node)
\t          d00002 v8::internal::Heap::CollectGarbage (/usr/bin/node)
\t    7f93e4300001 JS:* file:///work/main/src/gateway/forward.ts:1:5457 (/tmp/perf-18095.map)

node 18096 
\t         14b8865 uv__io_poll (/usr/bin/node)
\t         14ac8a7 uv_run (/usr/bin/node)

node 18096 
\t    7f93e4300002 JS:^#dispatch file:///work/main/node_modules/hono/dist/hono-base.js:261:11 (/tmp/perf-18096.map)
`;

describe('perf attribution', () => {
  it('charges each sample to its nearest JS frame, with kernel and GC apart', () => {
    const a = attribute(SAMPLES);
    expect(a.total).toBe(6);
    expect(Object.fromEntries(a.byCategory)).toEqual({
      // the megamorphic load made by stream code is stream code's
      'node:internal/streams/readable': 1,
      // the delete made by the forward stage is the forward stage's
      'src/gateway/forward.ts': 1,
      kernel: 1,
      // a scavenge is GC, whichever stage allocated
      GC: 1,
      '(native)': 1,
      hono: 1,
    });
  });

  it('names packages (scoped too), our files and Node core modules', () => {
    expect(categoryOf('/work/main/node_modules/@hono/node-server/dist/index.mjs')).toBe('@hono/node-server');
    expect(categoryOf('/x/node_modules/a/node_modules/lru-cache/dist/esm/index.js')).toBe('lru-cache');
    expect(categoryOf('/work/main/src/decisions/decision-key.ts')).toBe('src/decisions/decision-key.ts');
    expect(categoryOf('/work/main/dist/decisions/decision-key.js')).toBe('src/decisions/decision-key.js');
    expect(categoryOf('/work/main/load/services/bare-proxy.ts')).toBe('load/services/bare-proxy.ts');
    expect(categoryOf('node:_http_client')).toBe('node:_http_client');
  });
});
