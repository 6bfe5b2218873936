-- Decisions committed with their batch and not yet on the log, of every processor (see
-- pipeline.runner, step 10). Here, not in the processor's own schema: a replay swaps that schema
-- for a rebuilt one, and undelivered decisions are state the log cannot give back.
CREATE TABLE outbox (
    position bigserial PRIMARY KEY,
    processor text NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);
CREATE INDEX outbox_processor ON outbox (processor, position);
