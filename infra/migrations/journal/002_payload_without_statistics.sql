-- No query compares whole payloads, so their statistics serve no plan; sorting a sample of them
-- was half the cost of analyzing this table, which autovacuum repeats while the journal grows.
ALTER TABLE events ALTER COLUMN payload SET STATISTICS 0;
