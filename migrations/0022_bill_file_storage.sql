-- The bill files are stored as received, and wxrecond asks for them gzipped: PostgreSQL's attempt to
-- compress each 1 MiB part again (pglz) failed after working through most of it. Re-inserting the 39 parts
-- of a million-row day (40 MB) took 0.63-0.73 s with it and 0.18-0.35 s without, and it was the largest
-- single item in the server's profile of a whole fetch (perf, 7% of its CPU). Parts are now stored as they
-- are (a file that came plain is stored plain).
ALTER TABLE wxrecon.bill_files ALTER COLUMN data SET STORAGE EXTERNAL;
