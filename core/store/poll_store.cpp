#include "store/poll_store.hpp"

#include <map>
#include <utility>

#include <pqxx/pqxx>

#include "store/pg_array.hpp"

namespace wxrecon::store {
namespace {

claimed_order claimed_order_of(const pqxx::row& row) {
    claimed_order c;
    c.mchid = row[0].as<std::string>();
    c.out_trade_no = row[1].as<std::string>();
    c.state = domain::parse_trade_state(row[2].as<std::string>()).value_or(domain::trade_state::notpay);
    c.amount_total = row[3].as<std::int64_t>();
    c.created_at = row[4].as<std::int64_t>();
    if (!row[5].is_null()) c.expire_at = row[5].as<std::int64_t>();
    if (!row[6].is_null()) c.placed_at = row[6].as<std::int64_t>();
    c.poll_attempts = row[7].as<int>();
    if (!row[8].is_null()) c.last_polled_at = row[8].as<std::int64_t>();
    return c;
}

constexpr const char* claimed_columns =
    " RETURNING o.mchid, o.out_trade_no, o.state, o.amount_total, wxrecon.to_micros(o.created_at),"
    " wxrecon.to_micros(o.expire_at), wxrecon.to_micros(o.placed_at), o.poll_attempts,"
    " wxrecon.to_micros(o.last_polled_at)";

std::vector<claimed_order> claim_due_orders(pqxx::connection_base& conn, const std::string& owner,
                                            std::chrono::milliseconds lease, std::size_t limit) {
    pqxx::nontransaction tx(conn);  // one statement, one round trip
    const auto rows = tx.exec_params(
        "UPDATE wxrecon.orders o SET poll_lease_until = now() + make_interval(secs => $2::double precision / "
        "1000),"
        " poll_lease_owner = $1"
        " FROM (SELECT mchid, out_trade_no FROM wxrecon.orders"
        "       WHERE next_poll_at <= now() AND (poll_lease_until IS NULL OR poll_lease_until < now())"
        "       ORDER BY next_poll_at LIMIT $3 FOR UPDATE SKIP LOCKED) due"
        " WHERE o.mchid = due.mchid AND o.out_trade_no = due.out_trade_no" +
            std::string(claimed_columns),
        owner, static_cast<std::int64_t>(lease.count()), static_cast<std::int64_t>(limit));
    std::vector<claimed_order> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(claimed_order_of(row));
    return out;
}

order_lease lease_order(pqxx::connection_base& conn, const std::string& mchid,
                        const std::string& out_trade_no, const std::string& owner,
                        std::chrono::milliseconds lease, out_of_turn purpose) {
    const bool closing = purpose == out_of_turn::close_now;
    pqxx::work tx(conn);
    const auto rows = tx.exec_params(
        std::string("UPDATE wxrecon.orders o SET poll_lease_until = now() + make_interval(secs => "
                    "$4::double precision / 1000), poll_lease_owner = $3, updated_at = now()") +
            (closing ? ", expire_at = least(coalesce(o.expire_at, now()), now())" : "") +
            " WHERE o.mchid = $1 AND o.out_trade_no = $2" +
            (closing ? " AND o.state IN ('NOTPAY', 'USERPAYING')" : "") +
            " AND (o.poll_lease_until IS NULL OR o.poll_lease_until < now())" + claimed_columns,
        mchid, out_trade_no, owner, static_cast<std::int64_t>(lease.count()));
    order_lease out;
    if (!rows.empty()) {
        out.outcome = order_lease_outcome::leased;
        out.order = claimed_order_of(rows[0]);
    } else {
        const auto found = tx.exec_params(
            "SELECT state, state IN ('NOTPAY', 'USERPAYING') FROM wxrecon.orders WHERE mchid = $1 AND "
            "out_trade_no = $2",
            mchid, out_trade_no);
        if (!found.empty()) {
            const bool open = found[0][1].as<bool>();
            out.outcome = open || !closing ? order_lease_outcome::busy : order_lease_outcome::settled;
            out.order.state = domain::parse_trade_state(found[0][0].as<std::string>())
                                  .value_or(domain::trade_state::notpay);
        }
    }
    tx.commit();
    return out;
}

void write_poll_outcomes(pqxx::connection_base& conn, const std::string& owner,
                         const std::vector<poll_update>& updates) {
    // The last update of each order counts, as if they had been written one after another.
    std::map<std::pair<std::string, std::string>, const poll_update*> last;
    for (const auto& u : updates) last[{u.mchid, u.out_trade_no}] = &u;
    constexpr auto int8 = pg_array::element::int8;
    pg_array mchid, out_trade_no, next_poll_at{int8}, answered{pg_array::element::boolean}, error,
        fill_expire_at{int8}, stuck_after{int8};
    for (const auto& [key, u] : last) {
        mchid.add(u->mchid);
        out_trade_no.add(u->out_trade_no);
        next_poll_at.add(u->next_poll_at);
        answered.add(u->answered);
        error.add(u->error);
        fill_expire_at.add(u->fill_expire_at);
        stuck_after.add(u->stuck_after);
    }
    // One statement, one round trip for the whole batch: lock the rows in key order (as the ledger's
    // batches do, so the two cannot deadlock), release the leases and record the outcomes, then open or
    // resolve each order's `stuck` discrepancy from the row as updated.
    pqxx::nontransaction tx(conn);
    tx.exec_prepared("finish_polls", owner, mchid.param(), out_trade_no.param(), next_poll_at.param(),
                     answered.param(), error.param(), fill_expire_at.param(), stuck_after.param());
}

std::vector<std::optional<std::string>> finish_polls(pqxx::connection_base& conn, const std::string& owner,
                                                     const std::vector<poll_update>& updates) {
    std::vector<std::optional<std::string>> refused(updates.size());
    try {
        write_poll_outcomes(conn, owner, updates);
        return refused;
    } catch (const pqxx::sql_error& e) {
        if (updates.size() == 1) {
            refused[0] = e.what();
            return refused;
        }
    }
    // One outcome the database refuses must not cost its round mates theirs: each is written alone. An
    // update superseded by a later one of the same order is skipped, as the whole round skips it.
    std::map<std::pair<std::string, std::string>, std::size_t> last;
    for (std::size_t i = 0; i < updates.size(); ++i) last[{updates[i].mchid, updates[i].out_trade_no}] = i;
    for (std::size_t i = 0; i < updates.size(); ++i) {
        if (last.at({updates[i].mchid, updates[i].out_trade_no}) != i) continue;
        try {
            write_poll_outcomes(conn, owner, {updates[i]});
        } catch (const pqxx::sql_error& e) {
            refused[i] = e.what();
        }
    }
    return refused;
}

poll_gauges read_poll_gauges(pqxx::connection_base& conn, bool with_orders_by_state) {
    pqxx::nontransaction tx(conn);
    poll_gauges g;
    g.stuck =
        tx.exec1("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'stuck' AND resolved_at IS NULL")[0]
            .as<long>();
    // min() over the partial index on next_poll_at: one index probe, whatever the number of orders.
    const auto lag = tx.exec1(
        "SELECT greatest(0, extract(epoch FROM now() - min(next_poll_at)))::float8 FROM wxrecon.orders"
        " WHERE next_poll_at IS NOT NULL")[0];
    g.lag_seconds = lag.is_null() ? 0 : lag.as<double>();
    if (with_orders_by_state) {
        for (const auto& row : tx.exec("SELECT state, count(*) FROM wxrecon.orders GROUP BY state"))
            g.orders_by_state.emplace_back(row[0].as<std::string>(), row[1].as<long>());
    }
    return g;
}

}  // namespace

void prepare_poll_connection(pqxx::connection_base& conn) {
    // Claims, leases and schedules are bookkeeping, not payment facts (those go through the ledger, which
    // commits them synchronously): lost in a crash, an order is only claimed or polled again.
    // A row lock held elsewhere (an operator's transaction) must not hold up a round of outcomes, and every
    // poll behind it, for longer than this: the round fails and is written one by one, each waiting alone.
    pqxx::nontransaction(conn).exec("SET synchronous_commit = off; SET lock_timeout = '5s'");
    conn.prepare(
        "finish_polls",
        "WITH u AS ("
        " SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[], $7::bigint[],"
        "  $8::bigint[]) AS u(mchid, out_trade_no, next_poll_at, answered, error, fill_expire_at, "
        "stuck_after)),"
        " locked AS ("
        " SELECT t.mchid, t.out_trade_no FROM wxrecon.orders t JOIN u"
        "  ON t.mchid = u.mchid AND t.out_trade_no = u.out_trade_no AND t.poll_lease_owner = $1"
        " ORDER BY t.mchid, t.out_trade_no FOR UPDATE OF t),"
        " o AS ("
        " UPDATE wxrecon.orders t SET"
        "  next_poll_at = CASE WHEN t.state IN ('NOTPAY', 'USERPAYING') THEN "
        "wxrecon.from_micros(u.next_poll_at)"
        "   END,"
        "  poll_attempts = t.poll_attempts + CASE WHEN u.answered THEN 1 ELSE 0 END,"
        "  last_polled_at = CASE WHEN u.answered THEN now() ELSE t.last_polled_at END,"
        "  last_poll_error = u.error,"
        "  expire_at = coalesce(t.expire_at, wxrecon.from_micros(u.fill_expire_at)),"
        "  poll_lease_until = NULL, poll_lease_owner = NULL, updated_at = now()"
        " FROM locked JOIN u ON u.mchid = locked.mchid AND u.out_trade_no = locked.out_trade_no"
        " WHERE t.mchid = locked.mchid AND t.out_trade_no = locked.out_trade_no AND t.poll_lease_owner = $1"
        " RETURNING t.mchid, t.out_trade_no, t.state, t.expire_at, t.last_polled_at, t.last_poll_error,"
        "  t.poll_attempts, u.stuck_after > 0 AS watched,"
        "  u.stuck_after > 0 AND t.state IN ('NOTPAY', 'USERPAYING')"
        "  AND (t.expire_at < now() - u.stuck_after * interval '1 microsecond'"
        "       OR (t.last_poll_error IS NOT NULL"
        "           AND coalesce(t.last_polled_at, t.created_at) < now() - u.stuck_after * interval '1 "
        "microsecond'))"
        "  AS stuck),"
        " opened AS ("
        " INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail)"
        " SELECT mchid, out_trade_no, 'stuck', jsonb_build_object('state', state,"
        "  'expire_at', wxrecon.rfc3339(expire_at), 'last_polled_at', wxrecon.rfc3339(last_polled_at),"
        "  'last_poll_error', last_poll_error, 'poll_attempts', poll_attempts)"
        " FROM o WHERE stuck ON CONFLICT DO NOTHING RETURNING 1)"
        " UPDATE wxrecon.discrepancies d"
        " SET resolved_at = now(), status = 'resolved', resolved_by = 'wxrecond',"
        "  resolution = 'no longer stuck: the order left its unpaid state or its queries succeed'"
        " FROM o"
        " WHERE o.watched AND NOT o.stuck AND d.mchid = o.mchid AND d.out_trade_no = o.out_trade_no"
        " AND d.kind = 'stuck' AND d.resolved_at IS NULL");
}

boost::asio::awaitable<std::vector<claimed_order>> claim_due_orders(db_pool& pool, std::string owner,
                                                                    std::chrono::milliseconds lease,
                                                                    std::size_t limit) {
    auto job = [owner = std::move(owner), lease, limit](pqxx::connection_base& c) {
        return claim_due_orders(c, owner, lease, limit);
    };
    co_return co_await pool.run<std::vector<claimed_order>>(std::move(job));
}

boost::asio::awaitable<std::vector<std::optional<std::string>>> finish_polls(
    db_pool& pool, std::string owner, std::vector<poll_update> updates) {
    auto job = [owner = std::move(owner), updates = std::move(updates)](pqxx::connection_base& c) {
        return finish_polls(c, owner, updates);
    };
    co_return co_await pool.run<std::vector<std::optional<std::string>>>(std::move(job));
}

boost::asio::awaitable<poll_gauges> read_poll_gauges(db_pool& pool, bool with_orders_by_state,
                                                     deadline until) {
    auto job = [with_orders_by_state](pqxx::connection_base& c) {
        return read_poll_gauges(c, with_orders_by_state);
    };
    co_return co_await pool.run<poll_gauges>(std::move(job), until);
}

boost::asio::awaitable<order_lease> lease_order(db_pool& pool, std::string mchid, std::string out_trade_no,
                                                std::string owner, std::chrono::milliseconds lease,
                                                out_of_turn purpose) {
    auto job = [mchid = std::move(mchid), out_trade_no = std::move(out_trade_no), owner = std::move(owner),
                lease, purpose](pqxx::connection_base& c) {
        return lease_order(c, mchid, out_trade_no, owner, lease, purpose);
    };
    co_return co_await pool.run<order_lease>(std::move(job));
}

}  // namespace wxrecon::store
