// Schema of the tenant-resource service, applied with migrate(db, 'tenant-service', …).
// A migration's SQL is frozen once released: change the schema by appending one.
//
// Everything lives in its own PostgreSQL schema so the service can share a
// DATABASE_URL with the admin plane without table-name collisions. Every primary
// key starts with tenant_id: business ids are unique only within a tenant, and
// every lookup is an index range scan inside one tenant. Ids use the "C" collation
// so keyset paging compares bytes the same way on every server and locale.
import type { Migration } from '../db/index.js';

export const TENANT_SERVICE_COMPONENT = 'tenant-service';

export const TENANT_SERVICE_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'resources and call records',
    sql: `
      create schema if not exists tenant_service;

      create table tenant_service.resources (
        tenant_id   text collate "C" not null,
        kind        text not null,
        resource_id text collate "C" not null,
        attrs       jsonb not null default '{}'::jsonb,
        created_at  timestamptz not null default now(),
        updated_at  timestamptz not null default now(),
        primary key (tenant_id, kind, resource_id),
        constraint resources_kind_known check (kind in (
          'agents', 'queues', 'extensions', 'tel-groups', 'ivrs',
          'phone-numbers', 'routing-rules', 'configurations')),
        constraint resources_attrs_object check (jsonb_typeof(attrs) = 'object')
      );

      create table tenant_service.call_records (
        tenant_id    text collate "C" not null,
        call_id      text collate "C" not null,
        direction    text not null check (direction in ('inbound', 'outbound', 'internal')),
        from_number  text not null,
        to_number    text not null,
        agent_no     text,
        queue_no     text,
        started_at   timestamptz not null,
        answered_at  timestamptz,
        ended_at     timestamptz,
        duration_s   integer not null default 0 check (duration_s >= 0),
        disposition  text not null check (disposition in ('answered', 'missed', 'abandoned', 'voicemail', 'failed')),
        primary key (tenant_id, call_id)
      );
    `,
  },
];
