-- When each device was registered and last changed (milliseconds since the Unix epoch), so
-- DeviceService can report Device.create_time and update_time. Devices registered before this
-- migration count as registered now.
ALTER TABLE devices ADD COLUMN registered_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;
UPDATE devices SET registered_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000, updated_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
