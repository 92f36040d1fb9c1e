-- Version 9: mail that comes back (issue 17), read by `gazette inbound`.
-- Why an address was suppressed when it was not the reader's own choice: 'complained'
-- (a complaint report) or the permanent failure a delivery status report gave.
ALTER TABLE subscriber ADD COLUMN status_reason TEXT;
-- Every message read, with what was made of it. `key` is the message's own Message-ID
-- (or a digest of its bytes): the same report read twice (an MTA retrying its pipe, a
-- Maildir restored from a backup) changes nothing the second time. Temporary failures
-- are counted from here, once per delivery.
CREATE TABLE inbound (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    received_at   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    subscriber_id INTEGER,
    delivery_id   INTEGER,
    digest        TEXT,
    detail        TEXT
);
CREATE INDEX inbound_subscriber ON inbound (subscriber_id, kind, received_at);
CREATE INDEX inbound_received ON inbound (received_at);
