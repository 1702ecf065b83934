// `npm run -s token -- [--client] [--no-mfa] <sub> [--ttl 1h] [--aud <audience>]`
// Prints a development-issuer token for <sub> on stdout and nothing else (so
// `TOKEN=$(npm run -s token -- alice)` works); errors go to stderr with exit 1.
// Uses the same key files as the gateway, creating them if absent.
import { pathToFileURL } from 'node:url';
import { loadConfig, SUBJECT_ID } from '../config.js';
import { devIssuerEnabled, loadOrCreateDevIssuerKeys, mintDevToken, parseTtl } from '../gateway/dev-issuer.js';

const USAGE =
  'usage: npm run -s token -- [--client] [--no-mfa] <sub> [--ttl 1h] [--aud <audience>]\n  <sub>  user id (a `user:` prefix is accepted), or with --client a client id (a client-credentials token for the AuthZEN API); ttl: 90s, 15m, 1h, 7d (default 1h, at most 30d)\n  user tokens show a multi-factor sign-in (amr ["pwd","mfa"]); --no-mfa mints a password-only one (amr ["pwd"]), which nodes with security.require_mfa refuse';

export interface TokenArgs {
  sub: string;
  ttlS: number;
  aud?: string;
  /** Mint a client-credentials token (`client_id` = `sub`). */
  client?: boolean;
  /** Mint a password-only sign-in (`amr: ["pwd"]`). */
  noMfa?: boolean;
}

/** Parse argv (after the script name); throws with a message for the user. */
export function parseTokenArgs(argv: readonly string[]): TokenArgs {
  let sub: string | undefined;
  let ttlS = 3600;
  let aud: string | undefined;
  let client = false;
  let noMfa = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--ttl') {
      const text = value();
      const parsed = parseTtl(text);
      if (parsed === undefined) throw new Error(`invalid --ttl ${JSON.stringify(text)}: use e.g. 90s, 15m, 1h, 7d (1s to 30d)`);
      ttlS = parsed;
    } else if (flag === '--aud') {
      aud = value();
    } else if (arg === '--client') {
      client = true;
    } else if (arg === '--no-mfa') {
      noMfa = true;
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option ${JSON.stringify(flag)}`);
    } else if (sub === undefined) {
      sub = arg.startsWith('user:') ? arg.slice('user:'.length) : arg;
      if (!SUBJECT_ID.test(sub)) throw new Error(`invalid subject ${JSON.stringify(arg)}: must match ${SUBJECT_ID}`);
    } else {
      throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    }
  }
  if (sub === undefined) throw new Error('missing <sub>');
  return { sub, ttlS, ...(aud === undefined ? {} : { aud }), ...(client ? { client } : {}), ...(noMfa ? { noMfa } : {}) };
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Returns the exit code. */
export async function runTokenCli(argv: readonly string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.err(`${USAGE}\n`);
    return 0;
  }
  try {
    const args = parseTokenArgs(argv);
    const config = loadConfig(env);
    if (!devIssuerEnabled(config)) {
      throw new Error('the gateway does not trust the development issuer here (AUTH_ISSUERS is set, DEV_ISSUER is false, or NODE_ENV=production)');
    }
    const keys = await loadOrCreateDevIssuerKeys(config.TIERGATE_DATA_DIR);
    const token = await mintDevToken(keys, { sub: args.sub, audience: args.aud ?? config.DEV_ISSUER_AUDIENCE, ttlS: args.ttlS, client: args.client === true, mfa: args.noMfa !== true });
    io.out(`${token}\n`);
    return 0;
  } catch (err) {
    io.err(`token: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runTokenCli(process.argv.slice(2), process.env, {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  });
}
