-- Cloud disaster victim support (クラウド型被災者支援システム), from topic disaster.events.
-- Every table is built so that the same events give the same rows whatever the order of the
-- topic's partitions: peacetime facts (dwellings, the support roster) and a disaster's events
-- travel under different keys.

-- Peacetime: where each address is (the municipality's GIS), by the address as compared on forms.
CREATE TABLE dwellings (
    municipality text NOT NULL,
    address_key text NOT NULL,
    address text NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    event_id uuid NOT NULL,            -- the latest location wins
    PRIMARY KEY (municipality, address_key)
);

-- Peacetime: the evacuation-support roster (避難行動要支援者) and individual plans.
CREATE TABLE support_needs (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    needs text[] NOT NULL,
    plan text NOT NULL,
    supporter text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (municipality, resident_code)
);

CREATE TABLE disasters (
    disaster_id text PRIMARY KEY,
    municipality text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    occurred_on date NOT NULL,
    area jsonb,                        -- the polygon; null: the whole municipality
    declared_event uuid NOT NULL,
    declared_at timestamptz NOT NULL,
    seeded_as_of timestamptz,          -- the replica's history up to then
    victims int,
    households int
);

-- Which located dwellings lie in each disaster's area, kept whichever comes first.
CREATE TABLE area_dwellings (
    disaster_id text NOT NULL,
    address_key text NOT NULL,
    inside boolean NOT NULL,
    PRIMARY KEY (disaster_id, address_key)
);

-- The victim ledger (被災者台帳): the municipality's residents in force on the day of the
-- disaster as the replica had recorded them at the declaration. In the affected area unless
-- their dwelling is located outside it (area_dwellings). My Number stays sealed (personal).
CREATE TABLE victims (
    disaster_id text NOT NULL,
    municipality text NOT NULL,
    resident_code text NOT NULL,
    household_number text NOT NULL,
    relationship text NOT NULL,
    name text NOT NULL,
    name_kana text,
    birth_date date NOT NULL,
    sex text NOT NULL,
    address text NOT NULL,
    address_key text NOT NULL,
    auth_serial text,                  -- the newest user-authentication card issued by then
    personal jsonb NOT NULL,
    -- entered by staff (victim.updated)
    contact text,
    care_needs text,
    notes text,
    updated_event uuid,
    PRIMARY KEY (disaster_id, resident_code)
);
CREATE INDEX victims_household ON victims (disaster_id, household_number);
CREATE INDEX victims_address ON victims (disaster_id, address_key);
CREATE INDEX victims_serial ON victims (auth_serial);

CREATE TABLE shelters (
    disaster_id text NOT NULL,
    shelter_id text NOT NULL,
    name text NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    capacity int NOT NULL,
    opened_event uuid NOT NULL,
    closed_event uuid,
    PRIMARY KEY (disaster_id, shelter_id)
);

-- Every tap, and what the processor decided of it.
CREATE TABLE taps (
    event_id uuid PRIMARY KEY,
    disaster_id text NOT NULL,
    shelter_id text NOT NULL,
    auth_serial text NOT NULL,
    direction text NOT NULL,
    tapped_at timestamptz NOT NULL,
    outcome text,                      -- matched | refused
    municipality text,
    resident_code text,
    wide_area boolean,
    reason text,
    message text,
    decided_event uuid
);

-- Who is in which shelter now (the last matched tap of each person in a disaster).
CREATE TABLE evacuees (
    disaster_id text NOT NULL,
    municipality text NOT NULL,
    resident_code text NOT NULL,
    shelter_id text NOT NULL,
    present boolean NOT NULL,
    wide_area boolean NOT NULL,
    since timestamptz NOT NULL,
    tap_event uuid NOT NULL,
    PRIMARY KEY (disaster_id, municipality, resident_code)
);
CREATE INDEX evacuees_shelter ON evacuees (disaster_id, shelter_id) WHERE present;

CREATE TABLE applications (
    application_id uuid PRIMARY KEY,
    disaster_id text NOT NULL,
    kind text NOT NULL,
    auth_serial text NOT NULL,
    dwelling_address text NOT NULL,
    attachments text[] NOT NULL,
    submitted_event uuid NOT NULL,
    submitted_at timestamptz NOT NULL,
    status text NOT NULL,              -- submitted, matched, refused, accepted, rejected, ready
    municipality text,
    resident_code text,
    household_number text,
    reason text,                       -- refused: the code; rejected: staff's words
    message text,
    staff text,
    paid_yen bigint,
    status_event uuid NOT NULL         -- the event that set the status (the latest step)
);
CREATE INDEX applications_person ON applications (disaster_id, municipality, resident_code);

-- Damage assessments (住家被害認定) of each dwelling, one by one or by area.
CREATE TABLE assessments (
    disaster_id text NOT NULL,
    address_key text NOT NULL,
    event_id uuid NOT NULL,
    category text NOT NULL,
    individual boolean NOT NULL,
    staff text NOT NULL,
    PRIMARY KEY (disaster_id, address_key, event_id)
);

-- Bulk assessments by area, kept so that a dwelling located later still gets them.
CREATE TABLE area_assessments (
    event_id uuid PRIMARY KEY,
    disaster_id text NOT NULL,
    area jsonb NOT NULL,
    category text NOT NULL,
    staff text NOT NULL
);

CREATE TABLE notifications (
    event_id uuid PRIMARY KEY,
    disaster_id text NOT NULL,
    application_id uuid,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    sent_at timestamptz NOT NULL
);

-- Decisions committed with their batch and not yet on the log (see pipeline.runner, step 10).
CREATE TABLE outbox (
    position bigserial PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
