-- Version 7: hostile input (issue 14).
-- An edition carries at most `max_essays` essays (20 by default); how many more the
-- window held is frozen with it, so a resumed edition says "and N more" as the first
-- copies did.
ALTER TABLE edition ADD COLUMN more_essays INTEGER NOT NULL DEFAULT 0;
