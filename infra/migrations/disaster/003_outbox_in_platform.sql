-- The outbox moved to platform.outbox (platform/002_outbox.sql), out of reach of a replay's
-- schema swap; decisions still waiting here go there first, in their order.
INSERT INTO platform.outbox (processor, topic, key, envelope)
SELECT 'disaster', topic, key, envelope FROM outbox ORDER BY position;
DROP TABLE outbox;
