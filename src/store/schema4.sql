-- Local-time delivery (issue 5): a digest with local_time = true makes one edition per
-- time zone ("audience") at each tick of that zone; '' is everyone. Two zones can tick at
-- the same instant, so an edition is unique per digest, audience and tick. SQLite cannot
-- change a UNIQUE constraint in place: the table is rebuilt (foreign keys are off while
-- migrations run).
CREATE TABLE edition_v4 (
    id            INTEGER PRIMARY KEY,
    digest        TEXT NOT NULL,
    audience      TEXT NOT NULL DEFAULT '',
    number        INTEGER NOT NULL,
    scheduled_for TEXT NOT NULL,
    window_from   TEXT NOT NULL,
    window_to     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
    UNIQUE (digest, audience, scheduled_for),
    UNIQUE (digest, number)
);
INSERT INTO edition_v4 (id, digest, number, scheduled_for, window_from, window_to, created_at, finished_at)
    SELECT id, digest, number, scheduled_for, window_from, window_to, created_at, finished_at FROM edition;
DROP TABLE edition;
ALTER TABLE edition_v4 RENAME TO edition;

-- The last schedule tick the daemon handled per digest and audience (fired, found
-- nothing new, or skipped by the catch-up policy), so a restart knows what it missed.
CREATE TABLE schedule_tick (
    digest    TEXT NOT NULL,
    audience  TEXT NOT NULL DEFAULT '',
    last_tick TEXT NOT NULL,
    PRIMARY KEY (digest, audience)
);
