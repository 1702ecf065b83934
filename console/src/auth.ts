// Sign-in: OpenID Connect / OAuth 2.0 authorization code flow with PKCE (oauth4webapi),
// against the issuer found by metadata discovery: the configured identity provider,
// or in development the gateway's own development issuer. The access token stays in
// memory (api.ts); only the PKCE verifier and state wait in sessionStorage for the
// redirect back, and are removed as soon as it arrives.
import * as oauth from 'oauth4webapi';

export interface SignInConfig {
  mode: 'dev' | 'oidc' | 'off';
  issuer: string | null;
  clientId: string;
  scope: string;
  devIssuerPath: string;
}

const PENDING = 'tiergate.console.pkce';
export const CALLBACK_PATH = '/console/callback';

function issuerUrl(cfg: SignInConfig): URL {
  return new URL(cfg.mode === 'dev' ? `${location.origin}${cfg.devIssuerPath}` : cfg.issuer!);
}

/** Plain http only for the development issuer or a loopback provider. */
function insecure(url: URL): boolean {
  return url.protocol === 'http:' && (url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]' || url.origin === location.origin);
}

async function discover(cfg: SignInConfig): Promise<oauth.AuthorizationServer> {
  const issuer = issuerUrl(cfg);
  const res = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: insecure(issuer) });
  return oauth.processDiscoveryResponse(issuer, res);
}

const redirectUri = () => `${location.origin}${CALLBACK_PATH}`;

export async function beginSignIn(cfg: SignInConfig): Promise<void> {
  const as = await discover(cfg);
  if (as.authorization_endpoint === undefined) throw new Error('the issuer has no authorization endpoint');
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('client_id', cfg.clientId);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', cfg.scope);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('state', state);
  location.assign(url.href);
}

/** On the callback URL: exchanges the code for the access token. */
export async function completeSignIn(cfg: SignInConfig): Promise<string> {
  const saved = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  const current = new URL(location.href);
  // The code never stays in the address bar or the history.
  history.replaceState(null, '', '/console/');
  if (saved === null) throw new Error('no sign-in was started in this tab; sign in again');
  const { verifier, state } = JSON.parse(saved) as { verifier: string; state: string };
  const as = await discover(cfg);
  const client: oauth.Client = { client_id: cfg.clientId };
  const params = oauth.validateAuthResponse(as, client, current, state);
  const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri(), verifier, {
    [oauth.allowInsecureRequests]: insecure(issuerUrl(cfg)),
  });
  const result = await oauth.processAuthorizationCodeResponse(as, client, res);
  return result.access_token;
}
