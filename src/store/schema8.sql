-- Version 8: readers follow the essays they care about (issue 15).
CREATE TABLE follow (
    subscriber_id INTEGER NOT NULL REFERENCES subscriber (id),
    essay_id      INTEGER NOT NULL REFERENCES essay (id),
    created_at    TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, essay_id)
) WITHOUT ROWID;
CREATE INDEX follow_essay ON follow (essay_id);
-- The threads (essay row ids, comma-separated) one reader's copy of a `replies =
-- "followed"` edition carries, decided when the edition is made and frozen with it;
-- NULL: every thread of the edition.
ALTER TABLE delivery ADD COLUMN threads TEXT;
-- A reader's own "follow every new essay I am sent"; NULL: the digest's `auto_follow`.
ALTER TABLE subscriber ADD COLUMN auto_follow INTEGER;
