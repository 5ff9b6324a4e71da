#include "store/app_event_store.hpp"

#include <pqxx/pqxx>

#include "store/pg_array.hpp"

namespace wxrecon::store {

std::vector<app_event> claim_app_events_now(pqxx::connection_base& conn, const std::string& owner,
                                            std::chrono::milliseconds lease, std::size_t limit) {
    // One statement: atomic on its own, without a transaction's two more round trips.
    const auto rows = pqxx::nontransaction(conn).exec_prepared("app_events_claim", owner,
                                                               static_cast<std::int64_t>(lease.count()),
                                                               static_cast<std::int64_t>(limit));
    std::vector<app_event> out;
    out.reserve(rows.size());
    for (const auto& row : rows)
        out.push_back(app_event{row[0].as<std::int64_t>(), row[1].as<std::string>(), row[2].as<int>()});
    return out;
}

namespace {

app_event_gauges tidy(pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    tx.exec_prepared("app_events_forget");
    const auto row = tx.exec1(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8"
        " FROM wxrecon.app_events WHERE delivered_at IS NULL");
    return app_event_gauges{row[0].as<long>(), row[1].as<double>()};
}

}  // namespace

connection_setup with_app_events(connection_setup prepare, bool on) {
    if (!on) return prepare;
    return [prepare = std::move(prepare)](pqxx::connection_base& conn) {
        if (prepare) prepare(conn);
        pqxx::nontransaction(conn).exec("SET wxrecon.app_events = 'on'");
    };
}

void prepare_app_event_connection(pqxx::connection_base& conn) {
    // A prepared statement's plan may be made once and kept for the connection's life, from the outbox's
    // size at that moment. Made while the outbox was nearly empty (a new install, a daemon started after
    // it emptied) and kept as a backlog of 60,000 events arrived, the claim walked the primary key for
    // every head-of-order probe and ran the whole walk again for each event it leased: 1.6 s a claim, and
    // nothing delivered for minutes (found by bench/run-app-events.sh, auto_explain). Here every execution
    // is planned for the outbox as it is (about 0.4 ms a claim of some twenty events), and the planner may
    // use nothing but the outbox's indexes. The claim must walk the pending events in id order and stop
    // after `limit`; sorting ruled out, nothing else is left (planned as a sort of every pending event, as
    // when the table was analysed nearly empty, each claim cost O(backlog)).
    pqxx::nontransaction(conn).exec(
        "SET synchronous_commit = off; SET plan_cache_mode = force_custom_plan; SET enable_sort = off;"
        " SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off");
    // The events to lease are chosen once (the array), then leased by primary key: as a join, the planner
    // could make the leased rows the outer side and choose again for each. The head-of-order test is a
    // scalar subquery so that it stays an index probe per candidate instead of becoming a join over the
    // whole backlog. `id > 0` (true of every event) is what lets the walk, and only the walk, use
    // app_events_claim_queue: the head-of-order probe cannot, so it never walks the delivered events'
    // entries in that index (migration 0028).
    conn.prepare("app_events_claim",
                 "UPDATE wxrecon.app_events e SET lease_until = now() + make_interval(secs => $2::double "
                 "precision / 1000), lease_owner = $1, attempts = e.attempts + 1"
                 " WHERE e.id = ANY (ARRAY(SELECT a.id FROM wxrecon.app_events a"
                 "       WHERE a.delivered_at IS NULL AND a.id > 0 AND a.due_at <= now()"
                 "       AND (a.lease_until IS NULL OR a.lease_until < now())"
                 "       AND a.id = (SELECT min(b.id) FROM wxrecon.app_events b WHERE b.delivered_at IS NULL"
                 "                   AND b.mchid = a.mchid AND b.out_trade_no = a.out_trade_no)"
                 "       ORDER BY a.id LIMIT $3 FOR UPDATE SKIP LOCKED))"
                 " RETURNING e.id, wxrecon.app_event_body(e), e.attempts");
    // Through app_events_delivered (migration 0028): without it, a scan of a day of events every tidy.
    conn.prepare("app_events_forget",
                 "DELETE FROM wxrecon.app_events WHERE id = ANY (ARRAY(SELECT id FROM wxrecon.app_events"
                 " WHERE delivered_at < now() - interval '1 day' LIMIT 10000))");
    conn.prepare("app_events_delivered",
                 "UPDATE wxrecon.app_events SET delivered_at = now(), last_status = 200, last_error = NULL,"
                 " lease_until = NULL, lease_owner = NULL WHERE id = ANY($1::bigint[]) AND lease_owner = $2");
    conn.prepare("app_events_release",
                 "UPDATE wxrecon.app_events SET lease_until = NULL, lease_owner = NULL,"
                 " attempts = greatest(attempts - 1, 0) WHERE id = ANY($1::bigint[]) AND lease_owner = $2");
    conn.prepare(
        "app_events_retry",
        "UPDATE wxrecon.app_events SET due_at = now() + make_interval(secs => $5::double precision / "
        "1000), last_status = nullif($3, 0), last_error = $4, lease_until = NULL, lease_owner = NULL"
        " WHERE id = $1 AND lease_owner = $2");
}

boost::asio::awaitable<std::vector<app_event>> claim_app_events(db_pool& pool, std::string owner,
                                                                std::chrono::milliseconds lease,
                                                                std::size_t limit, deadline until) {
    auto job = [owner = std::move(owner), lease, limit](pqxx::connection_base& c) {
        return claim_app_events_now(c, owner, lease, limit);
    };
    co_return co_await pool.run<std::vector<app_event>>(std::move(job), until);
}

namespace {

// A statement over many events at once ($1 their ids, $2 the owner of their leases).
boost::asio::awaitable<void> update_leased(db_pool& pool, const char* statement,
                                           std::vector<std::int64_t> ids, std::string owner, deadline until) {
    auto job = [statement, ids = std::move(ids), owner = std::move(owner)](pqxx::connection_base& c) {
        pg_array list(pg_array::element::int8);
        for (const auto id : ids) list.add(id);
        pqxx::nontransaction(c).exec_prepared(statement, list.param(), owner);
        return true;
    };
    co_await pool.run<bool>(std::move(job), until);
}

}  // namespace

boost::asio::awaitable<void> finish_app_events(db_pool& pool, std::vector<std::int64_t> ids,
                                               std::string owner, deadline until) {
    co_await update_leased(pool, "app_events_delivered", std::move(ids), std::move(owner), until);
}

boost::asio::awaitable<void> release_app_events(db_pool& pool, std::vector<std::int64_t> ids,
                                                std::string owner, deadline until) {
    co_await update_leased(pool, "app_events_release", std::move(ids), std::move(owner), until);
}

boost::asio::awaitable<void> retry_app_event(db_pool& pool, std::int64_t id, std::string owner, int status,
                                             std::string error, std::chrono::milliseconds after,
                                             deadline until) {
    auto job = [id, owner = std::move(owner), status, error = std::move(error),
                after](pqxx::connection_base& c) {
        pqxx::nontransaction(c).exec_prepared("app_events_retry", id, owner, status, error,
                                              static_cast<std::int64_t>(after.count()));
        return true;
    };
    co_await pool.run<bool>(std::move(job), until);
}

boost::asio::awaitable<app_event_gauges> tidy_app_events(db_pool& pool, deadline until) {
    auto job = [](pqxx::connection_base& c) { return tidy(c); };
    co_return co_await pool.run<app_event_gauges>(std::move(job), until);
}

}  // namespace wxrecon::store
