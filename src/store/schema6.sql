-- Version 6: WordPress as it really runs (issue 11).
-- The id an item has at its origin ("post:123", "comment:456" for WordPress), so a later
-- gather can tell known items from new ones cheaply and an edition can ask the site
-- whether its items are still published.
ALTER TABLE essay ADD COLUMN origin_id TEXT;
ALTER TABLE reply ADD COLUMN origin_id TEXT;
-- Set when the origin no longer publishes the item (unpublished, trashed, spam,
-- unapproved, password-protected) before an edition carried it: never mailed after that.
ALTER TABLE essay ADD COLUMN retracted_at TEXT;
ALTER TABLE reply ADD COLUMN retracted_at TEXT;
CREATE INDEX essay_origin ON essay (source, origin_id);
CREATE INDEX reply_origin ON reply (source, origin_id);
-- What a source learnt about how to reach it: the WordPress REST root it discovered, and
-- the route it is running on when that is a fallback (shown by `status`).
ALTER TABLE source_state ADD COLUMN api_root TEXT;
ALTER TABLE source_state ADD COLUMN route TEXT;
-- A WordPress comment's guid is its post's guid plus "#comment-N"; a post guid that is a
-- pretty permalink ends in "/", so the slash before "#" is now dropped from keys, as it
-- always was at the end of a key. Re-key what older versions stored.
UPDATE OR IGNORE reply SET key = replace(key, '/#', '#') WHERE key LIKE '%/#%';
UPDATE reply SET essay_key = replace(essay_key, '/#', '#') WHERE essay_key LIKE '%/#%';
UPDATE reply SET parent_key = replace(parent_key, '/#', '#') WHERE parent_key LIKE '%/#%';
UPDATE OR IGNORE essay SET key = replace(key, '/#', '#') WHERE key LIKE '%/#%';
-- Replies a gather could not place under an essay yet (a site-wide comment feed ahead
-- of the essays feed, an essay outside the feed's window): kept so a later gather can
-- place them, since the comment feed may have moved on by then. Counted in status.
CREATE TABLE unplaced_reply (
    source           TEXT NOT NULL,
    key              TEXT NOT NULL,
    url              TEXT,
    in_reply_to      TEXT,
    in_reply_to_href TEXT,
    reply_to_comment INTEGER,
    author           TEXT,
    published_at     TEXT,
    content_html     TEXT NOT NULL,
    first_seen_at    TEXT NOT NULL,
    PRIMARY KEY (source, key)
);
ALTER TABLE source_state ADD COLUMN last_unplaced INTEGER NOT NULL DEFAULT 0;
