-- to_micros and from_micros were declared IMMUTABLE, but their bodies call STABLE functions (extract of
-- a timestamptz, timestamptz + interval: both read the session's time zone). PostgreSQL inlines a SQL
-- function only when its body is no more volatile than declared, so every call went through the SQL
-- function executor instead: perf of the server during a notification run put 11 % of PostgreSQL's CPU
-- in fmgr_sql, called from the fact batch's statements (every order's observed time is converted).
-- Declared as volatile as they are, they are inlined: the batch UPDATE of orders went from 641 to
-- 479 us a call and the batch's opening statement from 70 to 22 us in the same benchmark. No index or
-- constraint uses them (which would have needed IMMUTABLE).
ALTER FUNCTION wxrecon.to_micros(timestamptz) STABLE;
ALTER FUNCTION wxrecon.from_micros(bigint) STABLE;
