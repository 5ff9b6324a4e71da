#include "store/poll_store.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {

std::vector<claimed_order> claim_due_orders(pqxx::connection_base& conn, const std::string& owner,
                                            std::chrono::milliseconds lease, std::size_t limit) {
    pqxx::work tx(conn);
    const auto rows = tx.exec_params(
        "UPDATE wxrecon.orders o SET poll_lease_until = now() + make_interval(secs => $2::double precision / 1000),"
        " poll_lease_owner = $1"
        " FROM (SELECT mchid, out_trade_no FROM wxrecon.orders"
        "       WHERE next_poll_at <= now() AND (poll_lease_until IS NULL OR poll_lease_until < now())"
        "       ORDER BY next_poll_at LIMIT $3 FOR UPDATE SKIP LOCKED) due"
        " WHERE o.mchid = due.mchid AND o.out_trade_no = due.out_trade_no"
        " RETURNING o.mchid, o.out_trade_no, o.state, o.amount_total, wxrecon.to_micros(o.created_at),"
        " wxrecon.to_micros(o.expire_at), wxrecon.to_micros(o.placed_at), o.poll_attempts,"
        " wxrecon.to_micros(o.last_polled_at)",
        owner, static_cast<std::int64_t>(lease.count()), static_cast<std::int64_t>(limit));
    tx.commit();
    std::vector<claimed_order> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
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
        out.push_back(std::move(c));
    }
    return out;
}

void finish_poll(pqxx::connection_base& conn, const std::string& owner, const poll_update& u) {
    pqxx::work tx(conn);
    tx.exec_params(
        "UPDATE wxrecon.orders SET"
        " next_poll_at = CASE WHEN state IN ('NOTPAY', 'USERPAYING') THEN wxrecon.from_micros($4) END,"
        " poll_attempts = poll_attempts + CASE WHEN $5 THEN 1 ELSE 0 END,"
        " last_polled_at = CASE WHEN $5 THEN now() ELSE last_polled_at END,"
        " last_poll_error = $6,"
        " expire_at = coalesce(expire_at, wxrecon.from_micros($7)),"
        " poll_lease_until = NULL, poll_lease_owner = NULL, updated_at = now()"
        " WHERE mchid = $1 AND out_trade_no = $2 AND poll_lease_owner = $3",
        u.mchid, u.out_trade_no, owner, u.next_poll_at, u.answered, u.error, u.fill_expire_at);
    tx.commit();
}

}  // namespace wxrecon::store
