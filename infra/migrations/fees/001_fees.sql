-- Fees (手数料): one row per kiosk request, filled from three facets that may arrive in any order
-- — the request (issuance.requests), the issuer's decision (issuance.outcomes) and the kiosk's
-- notice. Each facet keeps the event with the smallest id, so a redelivery, a mirrored copy or a
-- request sent again at the other center is charged once.
CREATE TABLE requests (
    request_id uuid PRIMARY KEY,
    -- the request facet
    request_event uuid,
    day date,                  -- Japan date of the request: the day it is settled on
    municipality text,         -- the resident's: the one that collects and pays
    certificate_type text,
    store_operator text,
    center text,               -- east | west: the center the request entered at
    copies smallint,
    -- the outcome facet
    outcome_event uuid,
    outcome text,              -- issued | rejected
    through_bcl boolean,       -- issued from the BCL replica: the BCL fee is owed
    fee_quoted_yen integer,
    -- the notice facet
    notice_event uuid,
    notice text,               -- delivered | cancelled
    fee_paid_yen integer
);

-- The rows summed by municipality, Japan month, type, store operator and center; kept in step
-- with the rows in the same transaction. Statements read only this.
CREATE TABLE monthly (
    month date NOT NULL,
    municipality text NOT NULL,
    certificate_type text NOT NULL,
    store_operator text NOT NULL,
    center text NOT NULL,
    requests bigint NOT NULL,
    issued bigint NOT NULL,
    rejected bigint NOT NULL,
    delivered bigint NOT NULL,       -- issued and delivered: charged
    cancelled bigint NOT NULL,
    certificates bigint NOT NULL,    -- copies delivered
    fees_collected_yen bigint NOT NULL,
    commission_yen bigint NOT NULL,
    bcl_fee_yen bigint NOT NULL,
    PRIMARY KEY (month, municipality, certificate_type, store_operator, center)
);
CREATE INDEX monthly_empty ON monthly (requests) WHERE requests = 0;
CREATE INDEX monthly_by_municipality ON monthly (municipality, month);

-- The registry as fees need it, every version kept (topic municipalities): a year's statement
-- takes the version in force at the year's end, so a later change does not rewrite past years.
CREATE TABLE members (
    code text NOT NULL,
    event_id uuid NOT NULL,
    in_force_from timestamptz NOT NULL,
    name text NOT NULL,
    municipality_class text NOT NULL,
    population integer NOT NULL,
    uses_bcl boolean NOT NULL,
    disaster_system_since date,
    PRIMARY KEY (code, event_id)
);

-- The joining date, from the joined event, whatever order the registry's events arrive in.
CREATE TABLE joinings (
    code text PRIMARY KEY,
    joined_on date NOT NULL
);

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
