-- Decisions committed with their batch and not yet on the log (see pipeline.runner, step 10).
CREATE TABLE outbox (
    position bigserial PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);
