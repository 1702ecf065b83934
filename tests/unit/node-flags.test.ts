// tiergate's heap flag (src/shared/node-flags.ts): added to a process's arguments once,
// never over an operator's own value, and the same wherever a tiergate process starts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { NODE_HEAP_FLAGS, OLD_SPACE_INITIAL_MB, withHeapFlags } from '../../src/shared/node-flags.js';

describe('withHeapFlags', () => {
  it('adds the flag to arguments without it, once', () => {
    const loader = ['--import', 'tsx'];
    expect(withHeapFlags(loader)).toEqual(['--import', 'tsx', `--initial-old-space-size=${OLD_SPACE_INITIAL_MB}`]);
    expect(withHeapFlags(withHeapFlags(loader))).toEqual(withHeapFlags(loader));
    expect(loader).toEqual(['--import', 'tsx']);
  });

  it("keeps an operator's own value, in either spelling", () => {
    for (const own of [['--initial-old-space-size=64'], ['--initial_old_space_size=0'], ['--initial-old-space-size', '256']]) {
      expect(withHeapFlags(own)).toEqual(own);
    }
  });
});

describe('every place a tiergate process starts', () => {
  const flag = NODE_HEAP_FLAGS[0]!;
  it('npm start runs with the flag', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start!.split(/\s+/)).toContain(flag);
  });

  it("npm run start:gateway and start:tenant-service (the compiled services) run with the flag", () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    for (const script of ['start:gateway', 'start:tenant-service']) {
      expect(pkg.scripts[script]!.split(/\s+/).slice(0, 2), script).toEqual(['node', flag]);
    }
  });

  it("the image's default command and both compose services run with it", () => {
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync('Dockerfile', 'utf8'))?.[1];
    expect((JSON.parse(cmd ?? '[]') as string[]).slice(0, 2)).toEqual(['node', flag]);
    const compose = parseYaml(readFileSync('docker-compose.yml', 'utf8')) as { services: Record<string, { command?: string[] }> };
    for (const service of ['gateway', 'tenant-service']) {
      expect(compose.services[service]?.command?.slice(0, 2), service).toEqual(['node', flag]);
    }
  });
});
