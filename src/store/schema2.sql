-- Version 2: what was fetched from the web, for conditional requests and for polling
-- essays' comment feeds again after the essays feed answered 304.
CREATE TABLE http_cache (
    url           TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    -- Set when the URL is an essay's own comment feed.
    essay_key     TEXT,
    etag          TEXT,
    last_modified TEXT,
    fetched_at    TEXT NOT NULL
);
CREATE INDEX http_cache_source ON http_cache (source);
