// The tenant resource kinds, in one table shared by the route policy, the
// tenant-resource service and the docs. Path segment -> OpenFGA type and the
// name of the business id (unique only within a tenant).
export interface ResourceKind {
  /** Path segment under /api/v1/tenants/{tenantId}/ */
  segment: string;
  /** OpenFGA type of one resource; object ids are `<tenantId>/<businessId>`. */
  fgaType: string;
  /** Name of the business id path parameter. */
  idParam: string;
  /** Call records come from the telephony platform: read-only through the API. */
  readOnly: boolean;
  /** Configuration is tenant-admin only; the rest is operational (tenant users read it). */
  adminOnly: boolean;
}

export const RESOURCE_KINDS: readonly ResourceKind[] = [
  { segment: 'agents', fgaType: 'agent', idParam: 'agentNo', readOnly: false, adminOnly: false },
  { segment: 'queues', fgaType: 'queue', idParam: 'queueNo', readOnly: false, adminOnly: false },
  { segment: 'extensions', fgaType: 'extension', idParam: 'exten', readOnly: false, adminOnly: false },
  { segment: 'tel-groups', fgaType: 'tel_group', idParam: 'tgno', readOnly: false, adminOnly: false },
  { segment: 'ivrs', fgaType: 'ivr', idParam: 'ivrId', readOnly: false, adminOnly: false },
  { segment: 'phone-numbers', fgaType: 'phone_number', idParam: 'numberId', readOnly: false, adminOnly: false },
  { segment: 'routing-rules', fgaType: 'routing_rule', idParam: 'ruleId', readOnly: false, adminOnly: false },
  { segment: 'call-records', fgaType: 'call_record', idParam: 'callId', readOnly: true, adminOnly: false },
  { segment: 'configurations', fgaType: 'configuration', idParam: 'configKey', readOnly: false, adminOnly: true },
];

/** Ids of every hierarchy node and business resource. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function kindBySegment(segment: string): ResourceKind | undefined {
  return RESOURCE_KINDS.find((k) => k.segment === segment);
}
