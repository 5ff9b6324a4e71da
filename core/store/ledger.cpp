#include "store/ledger.hpp"

#include <pqxx/pqxx>

#include "base/json_writer.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {
namespace {

using namespace domain;

std::optional<std::string> non_empty(const std::string& s) {
    if (s.empty()) return std::nullopt;
    return s;
}

void set_time_budget(pqxx::work& tx, deadline until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw commit_not_confirmed("deadline passed before the transaction began");
    // Bounds every statement (lock waits included) by what is left of the request's deadline.
    tx.exec("SET LOCAL statement_timeout = " + std::to_string(left.count()));
    tx.exec("SET LOCAL synchronous_commit = on");
}

std::optional<order_snapshot> lock_order(pqxx::work& tx, const fact& f) {
    const auto r = tx.exec_prepared("ledger_lock_order", f.mchid, f.out_trade_no());
    if (r.empty()) return std::nullopt;
    const auto row = r[0];
    order_snapshot s;
    s.state = parse_trade_state(row[0].c_str()).value_or(trade_state::notpay);
    s.state_changed_at = row[1].as<std::int64_t>();
    s.amount_total = row[2].as<std::int64_t>();
    if (!row[3].is_null()) s.appid = row[3].as<std::string>();
    if (!row[4].is_null()) s.transaction_id = row[4].as<std::string>();
    s.has_successful_refund = row[5].as<bool>();
    return s;
}

std::optional<refund_snapshot> lock_refund(pqxx::work& tx, const std::string& mchid, const refund_fact& r) {
    const auto res = tx.exec_prepared("ledger_lock_refund", mchid, r.out_refund_no);
    if (res.empty()) return std::nullopt;
    refund_snapshot s;
    s.status = parse_refund_status(res[0][0].c_str()).value_or(refund_status::processing);
    s.status_changed_at = res[0][1].as<std::int64_t>();
    return s;
}

// Appends the event unless its identity is already recorded; false means duplicate.
bool append_event(pqxx::work& tx, const fact& f) {
    std::optional<std::string> trade_state_text, refund_status_text, transaction_id, out_refund_no;
    std::optional<std::int64_t> amount_total, payer_total, amount_refund;
    if (const auto* p = std::get_if<payment_fact>(&f.body)) {
        trade_state_text = std::string(to_string(p->state));
        transaction_id = non_empty(p->transaction_id);
        amount_total = p->amount_total;
        payer_total = p->payer_total;
    } else {
        const auto& r = std::get<refund_fact>(f.body);
        refund_status_text = std::string(to_string(r.status));
        transaction_id = non_empty(r.transaction_id);
        out_refund_no = r.out_refund_no;
        amount_total = r.amount_total;
        amount_refund = r.amount_refund;
    }
    const auto r = tx.exec_prepared("ledger_append_event", f.mchid, f.out_trade_no(), std::string(to_string(f.source)),
                                    f.notify_id, f.event_type, trade_state_text, refund_status_text, transaction_id,
                                    out_refund_no, amount_total, payer_total, amount_refund, f.occurred_at,
                                    f.observed_at, f.payload_json, f.raw_body, f.raw_headers_json);
    return !r.empty();
}

std::string state_source_of(fact_source s) {
    switch (s) {
    case fact_source::notify_v3:
    case fact_source::notify_v2: return "notify";
    case fact_source::query_v3:
    case fact_source::query_v2: return "query";
    case fact_source::close: return "close";
    }
    return "notify";
}

void update_order(pqxx::work& tx, const fact& f, const payment_fact* p, const decision& d) {
    std::optional<std::string> new_state;
    if (d.new_state) new_state = std::string(to_string(*d.new_state));
    const bool details = p != nullptr && d.record_payment_details;
    tx.exec_prepared("ledger_update_order", f.mchid, f.out_trade_no(), new_state, state_source_of(f.source),
                     details && p ? non_empty(p->state_desc) : std::nullopt,
                     details ? non_empty(p->transaction_id) : std::nullopt,
                     details ? non_empty(p->trade_type) : std::nullopt,
                     details ? non_empty(p->bank_type) : std::nullopt,
                     details ? non_empty(p->payer_openid) : std::nullopt,
                     details ? p->payer_total : std::nullopt, details ? p->success_time : std::nullopt,
                     is_notification(f.source));
}

std::string discrepancy_detail(const fact& f, const std::optional<order_snapshot>& order) {
    json_object o;
    o.add("source", to_string(f.source)).add("event_type", f.event_type);
    if (f.notify_id) o.add("notify_id", *f.notify_id);
    if (const auto* p = std::get_if<payment_fact>(&f.body)) {
        o.add("reported_state", to_string(p->state));
        if (p->amount_total) o.add("reported_total", *p->amount_total);
        if (p->payer_total) o.add("reported_payer_total", *p->payer_total);
        if (!p->appid.empty()) o.add("reported_appid", p->appid);
        if (!p->transaction_id.empty()) o.add("transaction_id", p->transaction_id);
    } else {
        const auto& r = std::get<refund_fact>(f.body);
        o.add("out_refund_no", r.out_refund_no).add("reported_refund_status", to_string(r.status));
        o.add("amount_refund", r.amount_refund);
    }
    if (order) {
        o.add("recorded_state", to_string(order->state)).add("recorded_total", order->amount_total);
        if (order->appid) o.add("recorded_appid", *order->appid);
    }
    return o.str();
}

void write_discrepancies(pqxx::work& tx, const fact& f, const std::optional<order_snapshot>& order,
                         const decision& d) {
    if (d.open.empty() && d.resolve.empty()) return;
    const std::string detail = discrepancy_detail(f, order);
    for (const auto kind : d.open)
        tx.exec_prepared("ledger_open_discrepancy", f.mchid, f.out_trade_no(), std::string(to_string(kind)), detail);
    for (const auto kind : d.resolve)
        tx.exec_prepared("ledger_resolve_discrepancy", f.mchid, f.out_trade_no(), std::string(to_string(kind)));
}

void upsert_refund(pqxx::work& tx, const std::string& mchid, const refund_fact& r) {
    tx.exec_prepared("ledger_upsert_refund", mchid, r.out_refund_no, r.out_trade_no, non_empty(r.refund_id),
                     non_empty(r.transaction_id), r.amount_refund, r.amount_total, std::string(to_string(r.status)),
                     r.success_time);
}

void commit_before(pqxx::work& tx, deadline until) {
    if (std::chrono::steady_clock::now() >= until) throw commit_not_confirmed("deadline passed before commit");
    try {
        tx.commit();
    } catch (const pqxx::in_doubt_error& e) {
        throw commit_not_confirmed(std::string("commit outcome unknown: ") + e.what());
    } catch (const pqxx::broken_connection& e) {
        throw commit_not_confirmed(std::string("connection lost during commit: ") + e.what());
    }
}

apply_result apply_payment(pqxx::work& tx, const fact& f, const payment_fact& p, deadline until) {
    auto order = lock_order(tx, f);
    decision d = decide(f, p, order);
    if (d.create_order) {
        const bool created = !tx.exec_prepared("ledger_create_order", f.mchid, p.out_trade_no, non_empty(p.appid),
                                               p.amount_total.value_or(0), non_empty(p.currency))
                                  .empty();
        if (!created) {
            // Someone else created it meanwhile (a concurrent delivery, a registration): decide on what is there.
            order = lock_order(tx, f);
            d = decide(f, p, order);
        }
    }
    apply_result out{d.result, false, d.open};
    if (d.result != outcome::applied && d.result != outcome::regression) {
        // Nothing to record; a notification still counts as received.
        if (is_notification(f.source) && order) tx.exec_prepared("ledger_mark_notified", f.mchid, f.out_trade_no());
        commit_before(tx, until);
        return out;
    }
    if (d.result == outcome::applied && !append_event(tx, f)) {
        tx.abort();
        return apply_result{outcome::unchanged, true, {}};
    }
    if (d.result == outcome::applied) update_order(tx, f, &p, d);
    write_discrepancies(tx, f, d.create_order ? std::nullopt : order, d);
    commit_before(tx, until);
    return out;
}

apply_result apply_refund(pqxx::work& tx, const fact& f, const refund_fact& r, deadline until) {
    const auto order = lock_order(tx, f);
    const auto refund = lock_refund(tx, f.mchid, r);
    const decision d = decide(f, r, order, refund);
    apply_result out{d.result, false, d.open};
    if (d.result == outcome::unmatched) {
        tx.abort();
        return out;
    }
    if (d.result != outcome::applied && d.result != outcome::regression) {
        commit_before(tx, until);
        return out;
    }
    if (d.result == outcome::applied) {
        if (!append_event(tx, f)) {
            tx.abort();
            return apply_result{outcome::unchanged, true, {}};
        }
        upsert_refund(tx, f.mchid, r);
        if (order) update_order(tx, f, nullptr, d);
    }
    write_discrepancies(tx, f, order, d);
    commit_before(tx, until);
    return out;
}

}  // namespace

void prepare_ledger_connection(pqxx::connection_base& conn) {
    conn.prepare("ledger_lock_order",
                 "SELECT state, wxrecon.to_micros(state_changed_at), amount_total, appid, transaction_id,"
                 " EXISTS (SELECT 1 FROM wxrecon.refunds r WHERE r.mchid = o.mchid"
                 "         AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS')"
                 " FROM wxrecon.orders o WHERE mchid = $1 AND out_trade_no = $2 FOR UPDATE");
    conn.prepare("ledger_lock_refund",
                 "SELECT status, wxrecon.to_micros(status_changed_at) FROM wxrecon.refunds"
                 " WHERE mchid = $1 AND out_refund_no = $2 FOR UPDATE");
    conn.prepare("ledger_create_order",
                 "INSERT INTO wxrecon.orders (mchid, out_trade_no, appid, amount_total, currency, origin, state_source)"
                 " VALUES ($1, $2, $3, $4, coalesce($5, 'CNY'), 'notify', 'notify')"
                 " ON CONFLICT DO NOTHING RETURNING 1");
    conn.prepare("ledger_append_event",
                 "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, notify_id, event_type, trade_state,"
                 " refund_status, transaction_id, out_refund_no, amount_total, payer_total, amount_refund,"
                 " occurred_at, received_at, payload, raw_body, raw_headers)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, wxrecon.from_micros($13),"
                 " wxrecon.from_micros($14), $15::jsonb, $16, $17::jsonb)"
                 " ON CONFLICT DO NOTHING RETURNING id");
    conn.prepare("ledger_update_order",
                 "UPDATE wxrecon.orders SET"
                 " state = coalesce($3, state),"
                 " state_source = CASE WHEN $3 IS NULL THEN state_source ELSE $4 END,"
                 " state_changed_at = CASE WHEN $3 IS NULL THEN state_changed_at ELSE now() END,"
                 " state_desc = coalesce($5, state_desc),"
                 " transaction_id = coalesce(transaction_id, $6),"
                 " trade_type = coalesce($7, trade_type),"
                 " bank_type = coalesce($8, bank_type),"
                 " payer_openid = coalesce(payer_openid, $9),"
                 " payer_total = coalesce($10, payer_total),"
                 " success_time = coalesce(success_time, wxrecon.from_micros($11)),"
                 " notified_at = CASE WHEN $12 THEN coalesce(notified_at, now()) ELSE notified_at END,"
                 " next_poll_at = CASE WHEN coalesce($3, state) IN ('NOTPAY', 'USERPAYING') THEN next_poll_at END,"
                 " updated_at = now()"
                 " WHERE mchid = $1 AND out_trade_no = $2");
    conn.prepare("ledger_mark_notified",
                 "UPDATE wxrecon.orders SET notified_at = now(), updated_at = now()"
                 " WHERE mchid = $1 AND out_trade_no = $2 AND notified_at IS NULL");
    conn.prepare("ledger_upsert_refund",
                 "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, refund_id, transaction_id,"
                 " amount_refund, amount_total, status, success_time)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, wxrecon.from_micros($9))"
                 " ON CONFLICT (mchid, out_refund_no) DO UPDATE SET"
                 " refund_id = coalesce(wxrecon.refunds.refund_id, excluded.refund_id),"
                 " transaction_id = coalesce(wxrecon.refunds.transaction_id, excluded.transaction_id),"
                 " amount_total = coalesce(excluded.amount_total, wxrecon.refunds.amount_total),"
                 " status = excluded.status, status_changed_at = now(),"
                 " success_time = coalesce(excluded.success_time, wxrecon.refunds.success_time),"
                 " updated_at = now()");
    conn.prepare("ledger_open_discrepancy",
                 "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail) VALUES ($1, $2, $3, $4::jsonb)"
                 " ON CONFLICT (mchid, out_trade_no, kind) WHERE resolved_at IS NULL DO NOTHING");
    conn.prepare("ledger_resolve_discrepancy",
                 "UPDATE wxrecon.discrepancies SET resolved_at = now()"
                 " WHERE mchid = $1 AND out_trade_no = $2 AND kind = $3 AND resolved_at IS NULL");
}

apply_result apply_fact(pqxx::connection_base& conn, const fact& f, deadline until) {
    try {
        pqxx::work tx(conn);
        set_time_budget(tx, until);
        if (const auto* p = std::get_if<payment_fact>(&f.body)) return apply_payment(tx, f, *p, until);
        return apply_refund(tx, f, std::get<refund_fact>(f.body), until);
    } catch (const pqxx::broken_connection& e) {
        throw database_unavailable(e.what());
    } catch (const pqxx::sql_error& e) {
        const std::string state = e.sqlstate();
        if (state == "57014") throw commit_not_confirmed(std::string("statement timed out: ") + e.what());
        // Connection exceptions and operator intervention (shutdown, crash recovery) are outages.
        if (state.starts_with("08") || state.starts_with("57")) throw database_unavailable(e.what());
        throw;
    }
}

boost::asio::awaitable<apply_result> ledger::apply(const domain::fact& f, deadline until) {
    // Named locals, not temporaries, live across the co_await: GCC 12 mishandles temporaries there.
    auto owned = std::make_shared<const domain::fact>(f);
    auto job = [owned, until](pqxx::connection_base& conn) { return apply_fact(conn, *owned, until); };
    apply_result result = co_await pool_.run<apply_result>(std::move(job), until);
    co_return result;
}

}  // namespace wxrecon::store
