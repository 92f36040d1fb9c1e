-- Version 3: who holds an in-flight delivery ("<pid>:<nonce>"), so that a row left
-- 'sending' by a dead process is retried while a live one's rows are left alone.
ALTER TABLE delivery ADD COLUMN claimed_by TEXT;
