// The settings the gateway enforces at the edge, before authorization (src/gateway/edge-policy.ts,
// docs/edge-policies.md): the admin API's explanation names them with their source.
export const IP_ALLOWLIST = 'security.ip_allowlist';
export const REQUIRE_MFA = 'security.require_mfa';
export const SESSION_MAX_AGE = 'security.session_max_age';
/** In the order the gateway checks them. */
export const EDGE_POLICY_KEYS = [IP_ALLOWLIST, REQUIRE_MFA, SESSION_MAX_AGE] as const;
