-- The region whose stack recorded an event (--region), for the scaled deployment's two regions.
ALTER TABLE usage_events ADD COLUMN region TEXT;
