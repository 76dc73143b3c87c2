-- The device registry: which printers exist and how they receive documents. No personal data.
-- Ids compare byte by byte (COLLATE "C"), so pages come in the order SQLite gives them.
CREATE TABLE devices (
    id                        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    display_name              TEXT NOT NULL,
    model                     TEXT NOT NULL,
    delivery                  TEXT NOT NULL,
    printer_uri               TEXT,
    pinned_certificate_sha256 TEXT,
    location                  TEXT NOT NULL,
    capabilities              BYTEA
);
