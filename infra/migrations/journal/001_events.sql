-- Every event of every topic, as analysts query the history. Table names stay unqualified: the
-- migrator sets the search path, so a replay can build the same tables in a fresh schema.
CREATE TABLE events (
    event_id uuid PRIMARY KEY,
    type text NOT NULL,
    version int NOT NULL,
    origin text NOT NULL,
    source text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    municipality text,
    sequence bigint,
    correlation_id uuid,
    causation_id uuid,
    payload jsonb NOT NULL
);

-- The questions analysts ask most: what happened of one kind, in a period, in a municipality.
-- Each index slows the projection's inserts, so only these.
CREATE INDEX events_type_occurred_at_idx ON events (type, occurred_at);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_municipality_occurred_at_idx ON events (municipality, occurred_at)
    WHERE municipality IS NOT NULL;

-- The projection's position in each partition, written in the same transaction as its rows. It
-- lives in the projection's schema so that swapping in a replayed schema carries its position.
CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
