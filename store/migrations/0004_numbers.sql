-- Numbers the fleet hands out once: a pool purchase's number (its licenses are
-- <type>-<number>-<n>) and an assignment's serial (its key is <license>#<serial>). The host that
-- makes the change takes the number before it appends the change, so every host applies the
-- same number.
CREATE SEQUENCE tollgate_number;
