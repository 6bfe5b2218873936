-- The issuer (発行サーバ): requests as the centers sent them, the decision recorded for each, the
-- documents it sealed, and the kiosks' later notices.

-- The first request seen under each request id.
CREATE TABLE requests (
    request_id uuid PRIMARY KEY,
    event_id uuid NOT NULL,
    origin text NOT NULL,
    source text NOT NULL,
    requested_at timestamptz NOT NULL,
    store_operator text NOT NULL,
    store_id text NOT NULL,
    store_municipality text NOT NULL,
    municipality text NOT NULL,
    auth_serial text NOT NULL,
    certificate_type text NOT NULL,
    fiscal_year int,
    copies int NOT NULL,
    recorded_at timestamptz NOT NULL
);

-- The same request id sent again (a kiosk retry, the same request at the other center): kept
-- for operations, never decided again.
CREATE TABLE duplicate_requests (
    event_id uuid PRIMARY KEY,
    request_id uuid NOT NULL,
    origin text NOT NULL,
    recorded_at timestamptz NOT NULL
);

-- One decision per request: the first outcome on the log wins.
CREATE TABLE outcomes (
    request_id uuid PRIMARY KEY,
    event_id uuid NOT NULL,
    outcome text NOT NULL,              -- issued | rejected
    municipality text NOT NULL,
    certificate_type text NOT NULL,
    reason text,                        -- rejected: the stable reason code
    message text,
    document_id uuid,
    fee_per_copy_yen int,
    copies int,
    fee_total_yen int,
    fee_schedule_from date,
    decided_at timestamptz NOT NULL
);
CREATE INDEX outcomes_municipality ON outcomes (municipality, decided_at);

-- Issued documents with their digest: the signed content (as signed), its signature and key.
CREATE TABLE documents (
    document_id uuid PRIMARY KEY,
    request_id uuid NOT NULL UNIQUE,
    verification_id text NOT NULL UNIQUE,
    municipality text NOT NULL,
    resident_code text NOT NULL,
    certificate_type text NOT NULL,
    seal_key_id text NOT NULL,
    digest text NOT NULL,               -- SHA-256 (hex) of content
    signature bytea NOT NULL,           -- DER ECDSA P-256 over content
    content bytea NOT NULL,             -- canonical JSON, the exact signed bytes
    pages int NOT NULL,
    issued_at timestamptz NOT NULL
);

-- The PDFs as sent to the kiosks. Drawn deterministically from the document, so a replay leaves
-- this empty and a PDF is drawn again when asked for; not part of the projection's digest.
CREATE TABLE document_files (
    document_id uuid PRIMARY KEY,
    pdf bytea NOT NULL,
    sha256 text NOT NULL
);

-- What the kiosk did after an issued outcome: delivered (fee paid, printed) or cancelled.
CREATE TABLE notices (
    event_id uuid PRIMARY KEY,
    request_id uuid NOT NULL,
    kind text NOT NULL,                 -- delivered | cancelled
    at timestamptz NOT NULL,
    fee_paid_yen int,
    reason text,
    origin text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX notices_request ON notices (request_id, at);

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
