-- The BCL replica (副本) of each municipality's resident register.

-- Every change as recorded, effective-dated: the history the current record is derived from.
CREATE TABLE changes (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    sequence bigint NOT NULL,
    reason text NOT NULL,
    -- 異動年月日 as resolved (a death of unknown date: the day after the last change before it).
    effective_date date NOT NULL,
    death_date_unknown boolean NOT NULL,
    household_number text NOT NULL,
    relationship text NOT NULL,
    name text NOT NULL,
    name_kana text,
    birth_date date NOT NULL,
    sex text NOT NULL,
    address text NOT NULL,
    previous_address text,
    head_of_household text,
    resident_since date,
    address_since date,
    notified_on date,
    -- The sealed personal data as pushed; the only place My Number is kept, never in clear.
    personal jsonb NOT NULL,
    batch int NOT NULL,
    line int NOT NULL,
    event_id uuid NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (municipality, resident_code, sequence)
);

-- The current record of each resident: the change with the latest effective date, the
-- later-recorded one on equal dates. A removal stays as a tombstone until purged.
CREATE TABLE residents (
    -- The winning change, column for column.
    LIKE changes,
    active boolean NOT NULL,
    removed_on date,
    purge_after date,
    -- What the next change needs without reading the whole history.
    last_sequence bigint NOT NULL,
    latest_effective_date date NOT NULL,
    PRIMARY KEY (municipality, resident_code)
);
CREATE INDEX residents_household_idx ON residents (municipality, household_number);
CREATE INDEX residents_purge_idx ON residents (purge_after) WHERE NOT active;

-- 印鑑登録: one row per registration number, moving forward by sequence.
CREATE TABLE seals (
    municipality text NOT NULL,
    registration_number text NOT NULL,
    resident_code text NOT NULL,
    status text NOT NULL,
    effective_date date NOT NULL,
    sequence bigint NOT NULL,
    PRIMARY KEY (municipality, registration_number)
);
CREATE INDEX seals_resident_idx ON seals (municipality, resident_code);

-- Tax facts per resident and fiscal year, moving forward by sequence.
CREATE TABLE tax_facts (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    fiscal_year int NOT NULL,
    income_yen bigint NOT NULL,
    assessed_yen bigint NOT NULL,
    paid_yen bigint NOT NULL,
    sequence bigint NOT NULL,
    PRIMARY KEY (municipality, resident_code, fiscal_year)
);

-- Receipts of accepted pushes: what each batch held.
CREATE TABLE batches (
    municipality text NOT NULL,
    sequence int NOT NULL,
    file_sha256 text NOT NULL,
    rows int NOT NULL,
    events int NOT NULL,
    full_snapshot boolean NOT NULL,
    accepted_at timestamptz NOT NULL,
    PRIMARY KEY (municipality, sequence)
);

-- Residents whose 5-year retention ended: their data (and data key) are gone.
CREATE TABLE purged (
    municipality text NOT NULL,
    resident_code text NOT NULL,
    removed_on date NOT NULL,
    purged_on date NOT NULL,
    PRIMARY KEY (municipality, resident_code)
);

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
