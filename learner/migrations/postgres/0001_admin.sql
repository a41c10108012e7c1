-- The learner's admin store (PostgreSQL): pools, experiments and gates as validated JSON specs with
-- their key columns, API keys (SHA-256 of the secret, never the secret), the audit log, and the
-- configuration version that every change bumps in the same transaction.
CREATE TABLE pools (
    name TEXT PRIMARY KEY NOT NULL,
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE experiments (
    id TEXT PRIMARY KEY NOT NULL,
    pool TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX experiments_pool ON experiments (pool);

CREATE TABLE gates (
    id TEXT PRIMARY KEY NOT NULL,
    feature TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    label TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL
);

CREATE TABLE config_version (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
