-- Version 1. Timestamps are UTC RFC 3339 text with microseconds and a trailing Z, so
-- that text order is time order.
CREATE TABLE essay (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    key           TEXT NOT NULL,
    title         TEXT NOT NULL,
    author        TEXT,
    url           TEXT,
    published_at  TEXT,
    updated_at    TEXT,
    summary       TEXT,
    content_html  TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    -- 1 when first seen in the source's first gather: part of its archive, not news.
    backfill      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, key)
);
CREATE INDEX essay_first_seen ON essay (first_seen_at);

CREATE TABLE reply (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    key           TEXT NOT NULL,
    essay_key     TEXT NOT NULL,
    parent_key    TEXT,
    author        TEXT,
    url           TEXT,
    published_at  TEXT,
    content_html  TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    backfill      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, key)
);
CREATE INDEX reply_first_seen ON reply (first_seen_at);

CREATE TABLE source_state (
    source            TEXT PRIMARY KEY,
    -- NULL until the first successful gather.
    first_gathered_at TEXT,
    last_gathered_at  TEXT NOT NULL,
    last_ok_at        TEXT,
    last_error        TEXT,
    last_new_essays   INTEGER NOT NULL DEFAULT 0,
    last_new_replies  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE subscriber (
    id         INTEGER PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name       TEXT,
    timezone   TEXT,
    origin     TEXT NOT NULL CHECK (origin IN ('config', 'cli', 'web')),
    status     TEXT NOT NULL DEFAULT 'active'
               CHECK (status IN ('active', 'unsubscribed', 'bounced')),
    changed_at TEXT NOT NULL
);

CREATE TABLE subscriber_digest (
    subscriber_id INTEGER NOT NULL REFERENCES subscriber (id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, digest)
);

CREATE TABLE edition (
    id            INTEGER PRIMARY KEY,
    digest        TEXT NOT NULL,
    number        INTEGER NOT NULL,
    scheduled_for TEXT NOT NULL,
    window_from   TEXT NOT NULL,
    window_to     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
    UNIQUE (digest, scheduled_for),
    UNIQUE (digest, number)
);

CREATE TABLE edition_item (
    edition_id INTEGER NOT NULL REFERENCES edition (id),
    kind       TEXT NOT NULL CHECK (kind IN ('essay', 'reply')),
    item_id    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (edition_id, kind, item_id)
);

CREATE TABLE delivery (
    id              INTEGER PRIMARY KEY,
    edition_id      INTEGER NOT NULL REFERENCES edition (id),
    subscriber_id   INTEGER NOT NULL REFERENCES subscriber (id),
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'deferred', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_reply      TEXT,
    message_id      TEXT,
    sent_at         TEXT,
    UNIQUE (edition_id, subscriber_id)
);
CREATE INDEX delivery_status ON delivery (edition_id, status);
