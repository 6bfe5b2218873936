-- Where each waiting decision will land at the earliest (its partition's floor when it was
-- decided) and which runner wrote it (pipeline.publish, pipeline.runner.flush_outbox): a decision
-- that a crashed send may have written already is looked for on the log from there before it is
-- sent again. Rows from before have no floor: they are looked for from the partition's start.
ALTER TABLE outbox ADD COLUMN floor bigint NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN writer uuid;
