-- Hosts, named by their operators, and the leases they hold on key accounts.
CREATE TABLE tollgate_host (
    name       text        PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 64),
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tollgate_lease (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account    text        NOT NULL REFERENCES tollgate_key_account (id),
    host       text        NOT NULL REFERENCES tollgate_host (name),
    granted    bigint      NOT NULL CHECK (granted > 0),
    drawn      bigint      NOT NULL DEFAULT 0,
    reported   bigint      NOT NULL DEFAULT 0,
    seq        bigint      NOT NULL DEFAULT 0 CHECK (seq >= 0),
    ttl_ms     bigint      NOT NULL CHECK (ttl_ms > 0),
    taken_at   timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    state      text        NOT NULL DEFAULT 'open'
                           CHECK (state IN ('open', 'reclaimed', 'settled', 'written_off')),
    in_doubt   bigint      NOT NULL DEFAULT 0 CHECK (in_doubt >= 0),
    settled    bigint,
    closed_at  timestamptz,
    CONSTRAINT tollgate_lease_parts CHECK (0 <= reported AND reported <= drawn AND drawn <= granted)
);

CREATE INDEX tollgate_lease_open_expiry ON tollgate_lease (expires_at) WHERE state = 'open';
CREATE INDEX tollgate_lease_by_account ON tollgate_lease (account);
