-- The usage thresholds (percent of the amount) already reported for a key account, one bit
-- each, so that the fleet reports each exactly once, whichever host's take reaches it first.
ALTER TABLE tollgate_key_account ADD COLUMN reported integer NOT NULL DEFAULT 0;
