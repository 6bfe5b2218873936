-- The municipality registry: each participating municipality's current profile.
CREATE TABLE municipalities (
    code text PRIMARY KEY,
    name text NOT NULL,
    uses_bcl boolean NOT NULL,
    municipality_class text NOT NULL,
    population bigint NOT NULL,
    -- Null until the `joined` event is applied (an update can arrive first from a mirror).
    joined_on date,
    profile jsonb NOT NULL,
    push_public_key text,
    -- The profile only moves forward: event ids are UUIDv7, ordered by time.
    last_event_id uuid NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
