// Ports for servers a test starts with a port number of its own choosing.
import { readFileSync } from 'node:fs';
import { portInUse } from '../../src/stack/ports.js';

/** The first port the kernel hands out for `listen(0)` and outgoing connections. */
function ephemeralPortStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 11_000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * A free port below the kernel's ephemeral range. A port picked here is not reserved until
 * the server binds it; in the ephemeral range, any outgoing connection or `listen(0)` of
 * a parallel test could take it in between, below it only another pick like this one.
 */
export async function freeListenPort(): Promise<number> {
  const top = ephemeralPortStart();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (top - 10_000));
    if (!(await portInUse(port))) return port;
  }
}
