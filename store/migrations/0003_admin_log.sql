-- The fleet's admin log: every admin change made with a fleet store (a project created, a key
-- added or added as a reserve), in the order the store committed them. Each host applies the
-- changes after the last one it applied, in order, to its own state; the NOTIFY sent with each
-- change (channel tollgate_admin) wakes them.
CREATE TABLE tollgate_admin (
    seq    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    host   text        NOT NULL CHECK (length(host) BETWEEN 1 AND 64),
    change text        NOT NULL
);
