-- When each device was registered and last changed (milliseconds since the Unix epoch), so
-- DeviceService can report Device.create_time and update_time. Devices registered before this
-- migration count as registered now.
ALTER TABLE devices ADD COLUMN registered_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET registered_ms = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT,
                   updated_ms = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT;
