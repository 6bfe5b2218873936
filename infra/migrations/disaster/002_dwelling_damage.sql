-- Each assessed dwelling's damage as it stands (its own assessment over an area's, the later
-- over the earlier: consumers.disaster.rules.assessed_damage), kept with every assessment so
-- that staff and the issuer of disaster certificates read one row.
CREATE TABLE dwelling_damage (
    disaster_id text NOT NULL,
    address_key text NOT NULL,
    category text NOT NULL,
    PRIMARY KEY (disaster_id, address_key)
);

-- The issuer finds a victim through the holder of a card, in every disaster of the municipality.
CREATE INDEX victims_person ON victims (municipality, resident_code);
