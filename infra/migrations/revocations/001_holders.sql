-- The automatic revoker's memory: which certificates each resident holds, and which of their
-- record changes revoke certificates (DOMAIN §5).
CREATE TABLE holdings (
    serial text PRIMARY KEY,
    kind text NOT NULL,
    municipality text NOT NULL,
    resident_code text NOT NULL,
    not_before timestamptz NOT NULL,
    revoked boolean NOT NULL
);
CREATE INDEX holdings_holder ON holdings (municipality, resident_code);

-- The basic four items of each resident's latest record, as an HMAC under the resident's own
-- data key: comparable without keeping them, and meaningless once the key is destroyed.
CREATE TABLE holders (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    basic_four bytea NOT NULL,
    PRIMARY KEY (municipality, resident_code)
);

-- Changes that revoke: basic-four changes (signature certificates), death and removal (both).
CREATE TABLE holder_events (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    at timestamptz NOT NULL,
    reason text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (municipality, resident_code, at, reason)
);

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
