-- Key accounts: one row per key, shared by every host of the fleet.
-- The columns partition the key's amount; the CHECK below is the no-over-grant invariant,
-- enforced by the server whatever the client does.
CREATE TABLE tollgate_key_account (
    id          text        PRIMARY KEY CHECK (octet_length(id) BETWEEN 1 AND 64),
    kind        text        NOT NULL CHECK (kind IN ('bytes', 'seats')),
    amount      bigint      NOT NULL CHECK (amount >= 0),
    leased      bigint      NOT NULL DEFAULT 0 CHECK (leased >= 0),
    used        bigint      NOT NULL DEFAULT 0 CHECK (used >= 0),
    in_doubt    bigint      NOT NULL DEFAULT 0 CHECK (in_doubt >= 0),
    written_off bigint      NOT NULL DEFAULT 0 CHECK (written_off >= 0),
    last_grant  bigint      NOT NULL DEFAULT 0 CHECK (last_grant >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tollgate_no_over_grant CHECK (leased + used + in_doubt + written_off <= amount)
);
