-- The device registry: which printers exist and how they receive documents. No personal data.
CREATE TABLE devices (
    id                        TEXT PRIMARY KEY NOT NULL,
    display_name              TEXT NOT NULL,
    model                     TEXT NOT NULL,
    delivery                  TEXT NOT NULL,
    printer_uri               TEXT,
    pinned_certificate_sha256 TEXT,
    location                  TEXT NOT NULL,
    capabilities              BLOB
);
