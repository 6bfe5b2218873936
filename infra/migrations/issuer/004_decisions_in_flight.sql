-- Decisions this issuer made and committed that have not come back from the log yet. The first
-- outcome on the log wins; if another decider's outcome for the same request gets there first
-- (a recorded day loaded into the log, a copy of the other center's decisions), this issuer's
-- own decision yields to it when it arrives, so the live projection ends as a replay builds it.
-- Empty once the log has caught up; not part of the projection's digest.
CREATE TABLE decisions_in_flight (
    request_id uuid PRIMARY KEY,
    event_id uuid NOT NULL
);
