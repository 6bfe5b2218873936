-- JPKI certificates as the lifecycle events left them (topic jpki.certificates).
CREATE TABLE certificates (
    serial text PRIMARY KEY,
    status text NOT NULL,               -- active | suspended | revoked
    changed_at timestamptz NOT NULL,    -- when it entered that status
    reason text,                        -- of the suspension or revocation
    kind text,                          -- signature | user_authentication
    -- Null for a serial a CRL listed before its issuance reached this center.
    municipality text,
    resident_code text,
    issuer text,
    not_before timestamptz,
    not_after timestamptz
);
CREATE INDEX certificates_holder ON certificates (municipality, resident_code);

-- Each event that changed a certificate's status.
CREATE TABLE transitions (
    event_id uuid PRIMARY KEY,
    serial text NOT NULL,
    status text NOT NULL,
    reason text,
    at timestamptz NOT NULL,
    source text NOT NULL
);
CREATE INDEX transitions_serial ON transitions (serial);

-- Lifecycle events that could not apply (a lift by another municipality, a suspension of a
-- revoked certificate ...): kept with the reason, never silently dropped.
CREATE TABLE refusals (
    event_id uuid PRIMARY KEY,
    serial text NOT NULL,
    event_type text NOT NULL,
    code text NOT NULL,
    message text NOT NULL,
    source text NOT NULL,
    recorded_at timestamptz NOT NULL
);

-- Every CRL imported: the importer refuses one older than the newest of its issuer.
CREATE TABLE crl_imports (
    sha256 text PRIMARY KEY,
    issuer text NOT NULL,
    crl_number bigint,
    this_update timestamptz NOT NULL,
    next_update timestamptz,
    entries bigint NOT NULL,
    revocations bigint NOT NULL,
    suspensions bigint NOT NULL,
    imported_at timestamptz NOT NULL
);
CREATE INDEX crl_imports_issuer ON crl_imports (issuer, this_update);

CREATE TABLE projection_offsets (
    cluster text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    last_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, topic, partition)
);
