-- Usage (利用状況): one row per kiosk request, filled from three facets that may arrive in any
-- order — the request (issuance.requests), the issuer's decision (issuance.outcomes) and the
-- kiosk's notice. Each facet keeps the event with the smallest id, so redeliveries, mirrored
-- copies and a request sent again at the other center count once. `bcl usage` counts from the
-- smallest table that can answer: one of the two cubes below when it can, these rows when a
-- question needs a day (or hour) and a municipality together.
CREATE TABLE requests (
    request_id uuid PRIMARY KEY,
    -- the request facet
    request_event uuid,
    requested_at timestamptz,
    day date,                  -- Japan date of the request
    hour smallint,             -- Japan hour, 6..22
    weekday smallint,          -- ISO: 1 Monday .. 7 Sunday
    municipality text,         -- the resident's
    store_municipality text,
    other_municipality boolean,
    certificate_type text,
    store_operator text,
    center text,               -- east | west: the center the request entered at
    copies smallint,
    -- the outcome facet
    outcome_event uuid,
    outcome text,              -- issued | rejected
    reason text,               -- the rejection reason code
    outside_counter_hours boolean,
    fee_quoted_yen integer,
    -- the notice facet
    notice_event uuid,
    notice text,               -- delivered | cancelled
    fee_paid_yen integer
);

CREATE INDEX requests_by_municipality_day ON requests (municipality, day);
CREATE INDEX requests_by_day ON requests (day);

-- The cubes: the rows' counts summed by hour (no municipality), by municipality and month (no
-- day or hour) and by store municipality and month, kept in step with the rows in the same
-- transaction. A month of national traffic
-- has ~3.6 million rows but a hundred thousand cells or so in each cube.
CREATE TABLE hourly (
    day date NOT NULL,
    hour smallint NOT NULL,
    certificate_type text NOT NULL,
    store_operator text NOT NULL,
    center text NOT NULL,
    outside_counter_hours boolean,
    other_municipality boolean NOT NULL,
    outcome text,
    reason text,
    requests bigint NOT NULL,
    issued bigint NOT NULL,
    rejected bigint NOT NULL,
    delivered bigint NOT NULL,
    cancelled bigint NOT NULL,
    certificates bigint NOT NULL,
    fees_paid_yen bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (day, hour, certificate_type, store_operator, center,
                               outside_counter_hours, other_municipality, outcome, reason)
);

CREATE TABLE monthly (
    month date NOT NULL,
    municipality text NOT NULL,
    certificate_type text NOT NULL,
    store_operator text NOT NULL,
    center text NOT NULL,
    outside_counter_hours boolean,
    other_municipality boolean NOT NULL,
    outcome text,
    reason text,
    requests bigint NOT NULL,
    issued bigint NOT NULL,
    rejected bigint NOT NULL,
    delivered bigint NOT NULL,
    cancelled bigint NOT NULL,
    certificates bigint NOT NULL,
    fees_paid_yen bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (month, municipality, certificate_type, store_operator, center,
                               outside_counter_hours, other_municipality, outcome, reason)
);

CREATE TABLE stores (
    month date NOT NULL,
    store_municipality text NOT NULL,
    certificate_type text NOT NULL,
    store_operator text NOT NULL,
    center text NOT NULL,
    other_municipality boolean NOT NULL,
    outcome text,
    requests bigint NOT NULL,
    issued bigint NOT NULL,
    rejected bigint NOT NULL,
    delivered bigint NOT NULL,
    cancelled bigint NOT NULL,
    certificates bigint NOT NULL,
    fees_paid_yen bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (month, store_municipality, certificate_type, store_operator, center,
                               other_municipality, outcome)
);

-- A cell whose last request moved to another cell is deleted at once; these find them.
CREATE INDEX hourly_empty ON hourly (requests) WHERE requests = 0;
CREATE INDEX monthly_empty ON monthly (requests) WHERE requests = 0;
CREATE INDEX stores_empty ON stores (requests) WHERE requests = 0;

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
