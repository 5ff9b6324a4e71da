-- Room on each outbox page for the updates its events go through (issue 14, Performance). A claim leases
-- every due event it finds, page after page, and at fillfactor 80 a page of nine ~700-byte events had room
-- for the new versions of two: the other seven left their page, so each claim wrote a whole new tuple and
-- three index entries (904 bytes of WAL an event) and the delivery mark after it another (537). At 50
-- every claimed event keeps its page: measured on 3,000 events, the claim became heap-only for all of them
-- (96 bytes of WAL an event, 12.9 -> 5.3 us) and the mark 197 bytes. The table holds a day of events, so
-- doubling its pages is cheap. Pages written before this migration keep their layout until they empty.
ALTER TABLE wxrecon.app_events SET (fillfactor = 50);
