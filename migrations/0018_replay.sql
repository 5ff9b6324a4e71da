-- Recovery tools (issue 16, `wxrecond replay`): a rejected notification replayed with today's keys keeps
-- what became of it, so finance can tell the ones fixed by a replay from the ones still waiting. The row
-- itself (the evidence) is never rewritten.
ALTER TABLE wxrecon.rejected_notifications
    ADD COLUMN replayed_at   timestamptz,
    ADD COLUMN replay_result text;
