-- Messages a processor could not decode or validate, kept byte for byte with where they came from
-- so an operator can see why, fix the sender or the code, and re-drive them.
CREATE TABLE dead_letters (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    key bytea,
    value bytea,
    headers jsonb,
    reason text,
    detail text,
    projection text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition, "offset")
);

-- Operators look at the newest failures first.
CREATE INDEX dead_letters_recorded_at_idx ON dead_letters (recorded_at);
