-- The intake ledger of municipal pushes: which batch of each municipality was accepted, which
-- waits for a gap to fill, which is being published. Not a projection: it records what the edge
-- decided before anything reached the log, so it is never replayed and has no offsets to track.
-- A refused push never takes a row here (its sequence stays free for the corrected file); its
-- report is kept beside the file under $BCL_HOME/<center>/pushes/.
CREATE TABLE batches (
    municipality text NOT NULL,
    sequence int NOT NULL CHECK (sequence >= 1),
    file_sha256 text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    -- publishing: accepted but not yet all on the log (a crash mid-publish leaves it so, and
    -- the same file pushed again finishes it with the same event ids).
    status text NOT NULL CHECK (status IN ('publishing', 'accepted', 'held')),
    rows int NOT NULL CHECK (rows >= 0),
    events int CHECK (events >= 0),
    received_at timestamptz NOT NULL,
    accepted_at timestamptz,
    signature bytea NOT NULL,
    kept_at text NOT NULL,
    full_snapshot boolean NOT NULL,
    as_of date,
    PRIMARY KEY (municipality, sequence),
    CHECK ((status = 'accepted') = (accepted_at IS NOT NULL)),
    CHECK (full_snapshot = (as_of IS NOT NULL))
);
CREATE INDEX batches_held_idx ON batches (municipality, sequence) WHERE status = 'held';
