-- One data key per resident, wrapped by the key-encryption key (DESIGN §7). Not a projection: the
-- keys are not in the log and cannot be rebuilt from it, so this schema is never replayed and
-- losing it loses every sealed payload.
CREATE TABLE data_keys (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    key_id uuid NOT NULL UNIQUE,
    -- NULL once destroyed: the crypto-shredding of the resident's data in every copy of the log.
    wrapped_key bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    PRIMARY KEY (municipality, resident_code),
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);
