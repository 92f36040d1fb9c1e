-- Version 5: the web endpoint (issue 6).
-- A subscriber's own choices, made through a signed link: they win over config.toml and
-- the managed list, which sync_subscribers rewrites. wanted = 0 is a per-digest
-- unsubscribe (RFC 8058 one-click); wanted = 1 a digest they confirmed or ticked.
CREATE TABLE digest_choice (
    subscriber_id INTEGER NOT NULL REFERENCES subscriber (id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    wanted        INTEGER NOT NULL CHECK (wanted IN (0, 1)),
    changed_at    TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, digest)
);
-- The time zone a subscriber picked on the preferences page (config.toml's is rewritten
-- on every run, so it cannot hold it).
ALTER TABLE subscriber ADD COLUMN chosen_timezone TEXT;
-- Who gets which digest: what the lists say, less what the subscriber left, plus what
-- they asked for.
CREATE VIEW subscription (subscriber_id, digest) AS
    SELECT d.subscriber_id, d.digest FROM subscriber_digest d
     WHERE NOT EXISTS (SELECT 1 FROM digest_choice c
                        WHERE c.subscriber_id = d.subscriber_id AND c.digest = d.digest AND c.wanted = 0)
    UNION
    SELECT c.subscriber_id, c.digest FROM digest_choice c WHERE c.wanted = 1;
-- Sign-ups through the form, waiting for the confirmation link (double opt-in). Nothing
-- is mailed to an address until its owner confirms.
CREATE TABLE signup (
    id           INTEGER PRIMARY KEY,
    email        TEXT NOT NULL,
    name         TEXT,
    timezone     TEXT,
    digests      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    confirmed_at TEXT
);
-- Counters for /metrics: how often each source was gathered and how often that failed.
ALTER TABLE source_state ADD COLUMN gathers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE source_state ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
