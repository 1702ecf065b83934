// What an upstream service's name and URL may be: shared by the route policy (the
// defaults in policy/routes.yaml) and the configuration (UPSTREAM_URLS overrides), so
// both refuse the same things with the same words.

/** An upstream's name: a metric label, a /readyz check name and an UPSTREAM_URLS key. */
export const UPSTREAM_NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const UPSTREAM_NAME_RULE = 'must be lower-case letters, digits and "-", starting with a letter (at most 63)';

/** A region of a regional upstream (`regions:` in the policy file): a value of the `data.residency_region` setting. */
export const REGION_NAME = /^[a-z][a-z0-9-]{0,31}$/;
export const REGION_NAME_RULE = 'must be lower-case letters, digits and "-", starting with a letter (at most 32)';

/**
 * The name of one regional target of an upstream, `<upstream>@<region>`: its UPSTREAM_URLS
 * key, its `upstream` metrics label and its `/readyz` check (`upstream:reports@eu`).
 */
export function regionalTargetName(upstream: string, region: string): string {
  return `${upstream}@${region}`;
}

/** The upstream the tenant-resource service is: its URL is TENANT_SERVICE_URL, or the service `npm start` runs. */
export const TENANT_SERVICE_UPSTREAM = 'tenant-service';

/**
 * Why `text` is not an upstream URL, or undefined when it is one: an absolute http(s)
 * origin (scheme, host, optional port) and nothing else. No path: the path forwarded is
 * the canonical one, changed only by the upstream's `stripPrefix`, so the path the
 * gateway signs in its assertion is the path the upstream receives. No credentials: they
 * would be sent to the upstream and show up in logs.
 */
export function upstreamUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not hold a user name or password';
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || /[?#]/.test(text)) {
    return 'must be an origin only (scheme, host, port): no path, query or fragment (use stripPrefix to change the path)';
  }
  return undefined;
}
