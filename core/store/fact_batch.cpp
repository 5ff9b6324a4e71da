#include "store/fact_batch.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "base/json_writer.hpp"
#include "store/pg_array.hpp"

namespace wxrecon::store {
namespace {

using namespace domain;

std::optional<std::string> non_empty(const std::string& s) {
    if (s.empty()) return std::nullopt;
    return s;
}

std::string key_of(std::string_view a, std::string_view b) {
    std::string k(a);
    k.push_back('\x1f');
    k.append(b);
    return k;
}

// Every identity a fact is recognised by (docs/interfaces.md §3.4).
std::vector<std::string> identities_of(const fact& f) {
    std::vector<std::string> ids;
    if (f.notify_id) ids.push_back(key_of("n" + f.mchid, *f.notify_id));
    if (const auto* p = std::get_if<payment_fact>(&f.body)) {
        if (!p->transaction_id.empty())
            ids.push_back(key_of("p" + f.mchid, key_of(p->transaction_id, to_string(p->state))));
        else
            ids.push_back(key_of("u" + f.mchid, key_of(p->out_trade_no, to_string(p->state))));
    } else {
        const auto& r = std::get<refund_fact>(f.body);
        ids.push_back(key_of("r" + f.mchid, key_of(r.out_refund_no, to_string(r.status))));
    }
    return ids;
}

std::string state_source_of(fact_source s) {
    switch (s) {
        case fact_source::notify_v3:
        case fact_source::notify_v2:
            return "notify";
        case fact_source::query_v3:
        case fact_source::query_v2:
        case fact_source::refund_query_v3:
        case fact_source::refund_query_v2:
            return "query";
        case fact_source::close:
            return "close";
        case fact_source::bill:
            return "bill";
    }
    return "notify";
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
        const auto* p = std::get_if<payment_fact>(&f.body);
        if (p && !p->currency.empty() && p->currency != order->currency)
            o.add("reported_currency", p->currency).add("recorded_currency", order->currency);
        if (order->appid) o.add("recorded_appid", *order->appid);
    }
    return o.str();
}

// What the batch will write to one order row: the net effect of its facts, in arrival order.
struct order_change {
    std::optional<trade_state> state;
    std::string state_source;
    std::optional<std::string> state_desc, transaction_id, trade_type, bank_type, payer_openid;
    std::optional<std::int64_t> payer_total;
    std::optional<micros> success_time;
    std::optional<micros> observed_at;  // of the fact that set `state`
    bool notified = false;
};

struct refund_change {
    const refund_fact* latest = nullptr;
    micros observed_at = 0;  // of the latest fact
    std::optional<std::string> refund_id, transaction_id;
    std::optional<std::int64_t> amount_total;
    std::optional<micros> success_time;
};

template <class T>
void keep_first(std::optional<T>& slot, const std::optional<T>& v) {
    if (!slot && v) slot = v;
}
template <class T>
void keep_last(std::optional<T>& slot, const std::optional<T>& v) {
    if (v) slot = v;
}

// The decisions of a batch and the rows they produce.
class batch_plan {
public:
    batch_plan(micros now, std::map<std::string, order_snapshot> orders,
               std::map<std::string, refund_snapshot> refunds, std::set<std::string> recorded)
        : now_(now), orders_(std::move(orders)), refunds_(std::move(refunds)), seen_(std::move(recorded)) {}

    apply_result add(const fact& f) {
        auto ids = identities_of(f);
        const std::string okey = key_of(f.mchid, f.out_trade_no());
        for (const auto& id : ids) {
            if (!seen_.count(id)) continue;
            // Already recorded: changes nothing, though a notification still counts as received.
            if (is_notification(f.source) && orders_.count(okey)) change_order(f, okey, decision{});
            return apply_result{outcome::unchanged, true, {}};
        }
        std::optional<order_snapshot> order;
        if (auto it = orders_.find(okey); it != orders_.end()) order = it->second;
        const decision d = std::holds_alternative<payment_fact>(f.body)
                               ? decide(f, std::get<payment_fact>(f.body), order)
                               : decide_refund(f, order);
        if (d.result == outcome::unmatched) return apply_result{d.result, false, {}};
        if (d.result == outcome::applied) {
            events_.push_back(&f);
            for (auto& id : ids) seen_.insert(std::move(id));
        }
        if (d.result == outcome::applied || is_notification(f.source)) {
            if (d.create_order) create(f, okey);
            if (orders_.count(okey)) change_order(f, okey, d);
        }
        if (d.result == outcome::applied && d.upsert_refund) change_refund(f);
        for (const auto kind : d.open) discrepancy_op(f, kind, true, order);
        for (const auto kind : d.resolve) discrepancy_op(f, kind, false, order);
        return apply_result{d.result, false, d.open};
    }

    void write(pqxx::transaction_base& tx) const;

private:
    void write_created_orders(pqxx::transaction_base& tx) const;
    void write_events_and_order_changes(pqxx::transaction_base& tx) const;
    void write_refund_changes(pqxx::transaction_base& tx) const;
    void write_discrepancies(pqxx::transaction_base& tx) const;

    decision decide_refund(const fact& f, const std::optional<order_snapshot>& order) const {
        const auto& r = std::get<refund_fact>(f.body);
        std::optional<refund_snapshot> refund;
        if (auto it = refunds_.find(key_of(f.mchid, r.out_refund_no)); it != refunds_.end())
            refund = it->second;
        return decide(f, r, order, refund);
    }

    void create(const fact& f, const std::string& okey) {
        const auto& p = std::get<payment_fact>(f.body);
        created_.push_back(&f);
        order_snapshot fresh;
        fresh.state_observed_at = f.observed_at;
        fresh.amount_total = p.amount_total.value_or(0);
        fresh.payer_total = p.payer_total;
        if (!p.appid.empty()) fresh.appid = p.appid;
        if (!p.currency.empty()) fresh.currency = p.currency;
        orders_[okey] = fresh;
    }

    void change_order(const fact& f, const std::string& okey, const decision& d) {
        auto& snap = orders_[okey];
        auto& c = changes_[okey];
        if (c.state_source.empty()) order_keys_.push_back({f.mchid, f.out_trade_no()});
        if (c.state_source.empty()) c.state_source = state_source_of(f.source);
        c.notified = c.notified || is_notification(f.source);
        if (d.result != outcome::applied) return;
        if (d.new_state) {
            c.state = d.new_state;
            c.state_source = state_source_of(f.source);
            snap.state = *d.new_state;
            snap.state_observed_at = f.observed_at;
            c.observed_at = f.observed_at;
        }
        const auto* p = std::get_if<payment_fact>(&f.body);
        // The description goes with the state it describes (a close records why, e.g. never placed).
        if (p && (d.new_state || d.record_payment_details)) keep_last(c.state_desc, non_empty(p->state_desc));
        if (p && d.record_payment_details) {
            keep_first(c.transaction_id, non_empty(p->transaction_id));
            keep_last(c.trade_type, non_empty(p->trade_type));
            keep_last(c.bank_type, non_empty(p->bank_type));
            keep_first(c.payer_openid, non_empty(p->payer_openid));
            keep_last(c.payer_total, p->payer_total);
            keep_last(snap.payer_total, p->payer_total);
            keep_first(c.success_time, p->success_time);
            if (snap.transaction_id.empty()) snap.transaction_id = p->transaction_id;
        }
    }

    void change_refund(const fact& f) {
        const auto& r = std::get<refund_fact>(f.body);
        const std::string rkey = key_of(f.mchid, r.out_refund_no);
        auto& c = refund_changes_[rkey];
        if (!c.latest) refund_order_.push_back(rkey);
        c.latest = &r;
        c.observed_at = f.observed_at;
        keep_first(c.refund_id, non_empty(r.refund_id));
        keep_first(c.transaction_id, non_empty(r.transaction_id));
        keep_last(c.amount_total, r.amount_total);
        keep_last(c.success_time, r.success_time);
        refunds_[rkey] = refund_snapshot{r.status, f.observed_at};
        refund_mchid_[rkey] = f.mchid;
        // The refund may complete the order's history (see domain::decide for payments).
        if (r.status == refund_status::success)
            if (auto it = orders_.find(key_of(f.mchid, r.out_trade_no)); it != orders_.end())
                it->second.refunded_total += r.amount_refund;
    }

    void discrepancy_op(const fact& f, discrepancy_kind kind, bool open,
                        const std::optional<order_snapshot>& order) {
        const std::string k = key_of(key_of(f.mchid, f.out_trade_no()), to_string(kind));
        auto& ops = discrepancy_ops_[k];
        if (ops.ops.empty()) {
            ops.mchid = f.mchid;
            ops.out_trade_no = f.out_trade_no();
            ops.kind = std::string(to_string(kind));
            discrepancy_order_.push_back(k);
        }
        if (open && ops.detail.empty()) ops.detail = discrepancy_detail(f, order);
        ops.ops.push_back(open);
    }

    struct discrepancy_ops {
        std::string mchid, out_trade_no, kind, detail;
        std::vector<bool> ops;  // true = open, false = resolve, in arrival order
    };

    micros now_;
    std::map<std::string, order_snapshot> orders_;
    std::map<std::string, refund_snapshot> refunds_;
    std::set<std::string> seen_;
    std::vector<const fact*> created_;
    std::vector<const fact*> events_;
    std::map<std::string, order_change> changes_;
    std::vector<std::pair<std::string, std::string>> order_keys_;
    std::map<std::string, refund_change> refund_changes_;
    std::map<std::string, std::string> refund_mchid_;
    std::vector<std::string> refund_order_;
    std::map<std::string, discrepancy_ops> discrepancy_ops_;
    std::vector<std::string> discrepancy_order_;
};

void batch_plan::write(pqxx::transaction_base& tx) const {
    write_created_orders(tx);
    write_events_and_order_changes(tx);
    write_refund_changes(tx);
    write_discrepancies(tx);
}

// Orders first seen in a notification or a bill: created before their events reference them.
void batch_plan::write_created_orders(pqxx::transaction_base& tx) const {
    if (created_.empty()) return;
    pg_array mchid, otn, appid, amount{pg_array::element::int8}, currency, origin;
    for (const fact* f : created_) {
        const auto& p = std::get<payment_fact>(f->body);
        origin.add(std::string_view(f->source == fact_source::bill ? "bill" : "notify"));
        mchid.add(f->mchid);
        otn.add(p.out_trade_no);
        appid.add(non_empty(p.appid));
        amount.add(p.amount_total.value_or(0));
        currency.add(non_empty(p.currency));
    }
    const auto r = tx.exec_prepared("batch_create_orders", mchid.param(), otn.param(), appid.param(),
                                    amount.param(), currency.param(), origin.param());
    if (r.size() != created_.size()) throw batch_conflict("an order was created concurrently");
}

namespace {

// The columns of the rows batch_write_events_and_orders writes, one array each.
struct event_columns {
    static constexpr auto int8 = pg_array::element::int8;
    pg_array mchid, otn, source, nid, etype, tstate, rstatus, txid, orn, total{int8}, payer_total{int8},
        refund{int8}, occurred{int8}, received{int8}, payload, raw_body, raw_headers;
};
struct order_change_columns {
    static constexpr auto int8 = pg_array::element::int8;
    pg_array mchid, otn, state, source, desc, txid, ttype, btype, openid, payer_total{int8}, success{int8},
        notified{pg_array::element::boolean}, observed{int8};
};

}  // namespace

// Every applied fact as received (the evidence, in arrival order) and the net change to each order row,
// in one statement: a round trip fewer for every batch.
void batch_plan::write_events_and_order_changes(pqxx::transaction_base& tx) const {
    if (events_.empty() && order_keys_.empty()) return;
    event_columns e;
    for (const fact* f : events_) {
        e.mchid.add(f->mchid);
        e.otn.add(f->out_trade_no());
        e.source.add(to_string(f->source));
        e.nid.add(f->notify_id);
        e.etype.add(f->event_type);
        if (const auto* p = std::get_if<payment_fact>(&f->body)) {
            e.tstate.add(to_string(p->state));
            e.rstatus.add_null();
            e.txid.add(non_empty(p->transaction_id));
            e.orn.add_null();
            e.total.add(p->amount_total);
            e.payer_total.add(p->payer_total);
            e.refund.add_null();
        } else {
            const auto& r = std::get<refund_fact>(f->body);
            e.tstate.add_null();
            e.rstatus.add(to_string(r.status));
            e.txid.add(non_empty(r.transaction_id));
            e.orn.add(r.out_refund_no);
            e.total.add(r.amount_total);
            e.payer_total.add_null();
            e.refund.add(r.amount_refund);
        }
        e.occurred.add(f->occurred_at);
        e.received.add(f->observed_at);
        e.payload.add(f->payload_json);
        e.raw_body.add(f->raw_body);
        e.raw_headers.add(f->raw_headers_json);
    }
    order_change_columns o;
    for (const auto& [m, otn] : order_keys_) {
        const auto& c = changes_.at(key_of(m, otn));
        o.mchid.add(m);
        o.otn.add(otn);
        o.state.add(c.state ? std::optional<std::string>(std::string(to_string(*c.state))) : std::nullopt);
        o.source.add(c.state_source);
        o.desc.add(c.state_desc);
        o.txid.add(c.transaction_id);
        o.ttype.add(c.trade_type);
        o.btype.add(c.bank_type);
        o.openid.add(c.payer_openid);
        o.payer_total.add(c.payer_total);
        o.success.add(c.success_time);
        o.notified.add(c.notified);
        o.observed.add(c.observed_at);
    }
    try {
        tx.exec_prepared("batch_write_events_and_orders", e.mchid.param(), e.otn.param(), e.source.param(),
                         e.nid.param(), e.etype.param(), e.tstate.param(), e.rstatus.param(), e.txid.param(),
                         e.orn.param(), e.total.param(), e.payer_total.param(), e.refund.param(),
                         e.occurred.param(), e.received.param(), e.payload.param(), e.raw_body.param(),
                         e.raw_headers.param(), o.mchid.param(), o.otn.param(), o.state.param(),
                         o.source.param(), o.desc.param(), o.txid.param(), o.ttype.param(), o.btype.param(),
                         o.openid.param(), o.payer_total.param(), o.success.param(), o.notified.param(),
                         o.observed.param());
    } catch (const pqxx::unique_violation&) {
        // The identities were looked up under the orders' locks: only another transaction recording the
        // same fact meanwhile can make a unique index refuse a row (the batch is then retried).
        throw batch_conflict("a fact identity was recorded concurrently");
    }
}

// The net change to each refund row.
void batch_plan::write_refund_changes(pqxx::transaction_base& tx) const {
    if (refund_order_.empty()) return;
    constexpr auto int8 = pg_array::element::int8;
    pg_array mchid, orn, otn, rid, txid, amount{int8}, total{int8}, status, success{int8}, observed{int8};
    for (const auto& k : refund_order_) {
        const auto& c = refund_changes_.at(k);
        mchid.add(refund_mchid_.at(k));
        orn.add(c.latest->out_refund_no);
        otn.add(c.latest->out_trade_no);
        rid.add(c.refund_id);
        txid.add(c.transaction_id);
        amount.add(c.latest->amount_refund);
        total.add(c.amount_total);
        status.add(to_string(c.latest->status));
        success.add(c.success_time);
        observed.add(c.observed_at);
    }
    tx.exec_prepared("batch_upsert_refunds", mchid.param(), orn.param(), otn.param(), rid.param(),
                     txid.param(), amount.param(), total.param(), status.param(), success.param(),
                     observed.param());
}

// Discrepancies opened and resolved by the batch.
void batch_plan::write_discrepancies(pqxx::transaction_base& tx) const {
    // Net effect per (order, kind), matching one-at-a-time application: a resolve that precedes an open
    // closes the existing row first; an open lands before a resolve that follows it.
    pg_array resolve_first[3], open[4], resolve_last[3];
    for (const auto& k : discrepancy_order_) {
        const auto& d = discrepancy_ops_.at(k);
        const auto last_open = std::find(d.ops.rbegin(), d.ops.rend(), true);
        const bool any_open = last_open != d.ops.rend();
        const bool resolve_before_open =
            any_open && std::find(last_open, d.ops.rend(), false) != d.ops.rend();
        auto add3 = [&](pg_array* a) {
            a[0].add(d.mchid);
            a[1].add(d.out_trade_no);
            a[2].add(d.kind);
        };
        if (resolve_before_open) add3(resolve_first);
        if (any_open) {
            add3(open);
            open[3].add(d.detail);
        }
        if (!d.ops.back()) add3(resolve_last);
    }
    if (!resolve_first[0].empty())
        tx.exec_prepared("batch_resolve_discrepancies", resolve_first[0].param(), resolve_first[1].param(),
                         resolve_first[2].param());
    if (!open[0].empty())
        tx.exec_prepared("batch_open_discrepancies", open[0].param(), open[1].param(), open[2].param(),
                         open[3].param());
    if (!resolve_last[0].empty())
        tx.exec_prepared("batch_resolve_discrepancies", resolve_last[0].param(), resolve_last[1].param(),
                         resolve_last[2].param());
}

// Locks every order and refund the batch touches (in key order, so concurrent batches cannot deadlock),
// then reads, in one statement begun once the locks are held, the clock, the orders' refunded totals and
// which of the batch's identities are already recorded.
batch_plan read_locked_state(pqxx::transaction_base& tx, const std::vector<const fact*>& facts) {
    pg_array order_mchid, order_otn, refund_mchid, refund_orn;
    pg_array nid_m, nid_v, pay_m, pay_t, pay_s, unpaid_m, unpaid_o, unpaid_s, ref_m, ref_o, ref_s;
    for (const fact* f : facts) {
        order_mchid.add(f->mchid);
        order_otn.add(f->out_trade_no());
        if (f->notify_id) nid_m.add(f->mchid), nid_v.add(*f->notify_id);
        if (const auto* p = std::get_if<payment_fact>(&f->body)) {
            if (!p->transaction_id.empty())
                pay_m.add(f->mchid), pay_t.add(p->transaction_id), pay_s.add(to_string(p->state));
            else
                unpaid_m.add(f->mchid), unpaid_o.add(p->out_trade_no), unpaid_s.add(to_string(p->state));
        } else {
            const auto& r = std::get<refund_fact>(f->body);
            refund_mchid.add(f->mchid);
            refund_orn.add(r.out_refund_no);
            ref_m.add(f->mchid), ref_o.add(r.out_refund_no), ref_s.add(to_string(r.status));
        }
    }
    std::map<std::string, order_snapshot> orders;
    for (const auto& row : tx.exec_prepared("batch_lock_orders", order_mchid.param(), order_otn.param())) {
        order_snapshot s;
        s.state = parse_trade_state(row[2].c_str()).value_or(trade_state::notpay);
        s.state_observed_at = row[3].as<std::int64_t>();
        s.amount_total = row[4].as<std::int64_t>();
        if (!row[5].is_null()) s.appid = row[5].as<std::string>();
        if (!row[6].is_null()) s.transaction_id = row[6].as<std::string>();
        s.refunded_total = row[7].as<std::int64_t>();
        if (!row[8].is_null()) s.payer_total = row[8].as<std::int64_t>();
        s.currency = row[9].as<std::string>();
        orders.emplace(key_of(row[0].c_str(), row[1].c_str()), s);
    }
    std::map<std::string, refund_snapshot> refunds;
    if (!refund_mchid.empty())
        for (const auto& row :
             tx.exec_prepared("batch_lock_refunds", refund_mchid.param(), refund_orn.param()))
            refunds.emplace(
                key_of(row[0].c_str(), row[1].c_str()),
                refund_snapshot{parse_refund_status(row[2].c_str()).value_or(refund_status::processing),
                                row[3].as<std::int64_t>()});
    std::optional<micros> now;
    std::set<std::string> recorded;
    for (const auto& row :
         tx.exec_prepared("batch_read_state", order_mchid.param(), order_otn.param(), nid_m.param(),
                          nid_v.param(), pay_m.param(), pay_t.param(), pay_s.param(), unpaid_m.param(),
                          unpaid_o.param(), unpaid_s.param(), ref_m.param(), ref_o.param(), ref_s.param())) {
        const std::string kind = row[0].c_str();
        if (kind == "c") {
            now = row[1].as<std::int64_t>();
        } else if (kind == "t") {
            if (const auto it = orders.find(key_of(row[1].c_str(), row[2].c_str())); it != orders.end())
                it->second.refunded_total = row[3].as<std::int64_t>();
        } else if (kind == "n") {
            recorded.insert(key_of("n" + std::string(row[1].c_str()), row[2].c_str()));
        } else {
            recorded.insert(key_of(kind + row[1].c_str(), key_of(row[2].c_str(), row[3].c_str())));
        }
    }
    if (!now) throw std::logic_error("batch_read_state returned no clock row");
    return batch_plan(*now, std::move(orders), std::move(refunds), std::move(recorded));
}

// After a failure the connection may be inside a failed transaction; the next batch must not find it so.
// A fresh transaction object: libpqxx may refuse more work from the one an error went through.
void rollback_quietly(pqxx::connection_base& conn) noexcept {
    try {
        pqxx::nontransaction(conn).exec("ROLLBACK");
    } catch (const std::exception&) {
        // A broken connection: the pool replaces it, and the server rolled back already.
    }
}

}  // namespace

std::string batch_settings(long statement_timeout_ms) {
    return "SET LOCAL synchronous_commit = on; SET LOCAL statement_timeout = " +
           std::to_string(statement_timeout_ms) +
           "; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off;"
           " SET LOCAL enable_mergejoin = off; SET LOCAL plan_cache_mode = force_generic_plan";
}

batch_transaction::batch_transaction(pqxx::connection_base& conn, long statement_timeout_ms) : conn_(conn) {
    tx_.emplace(conn);
    try {
        // One simple query: BEGIN and the settings, none of them planned.
        tx_->exec("BEGIN; " + batch_settings(statement_timeout_ms));
    } catch (...) {
        // The settings may have failed after BEGIN: the connection must not stay in the failed transaction.
        tx_.reset();
        open_ = false;
        rollback_quietly(conn);
        throw;
    }
}

batch_transaction::~batch_transaction() {
    tx_.reset();
    if (open_) rollback_quietly(conn_);
}

void batch_transaction::commit() {
    open_ = false;  // whatever happens now, nothing is left to roll back
    // A COMMIT in a failed transaction answers ROLLBACK without an error. It cannot meet one here: no error
    // of a batch's statements is swallowed (a unique violation becomes batch_conflict), and the batch
    // ends at its first.
    tx_->exec("COMMIT");
}

std::vector<apply_result> apply_in(batch_transaction& batch, const std::vector<const fact*>& facts) {
    pqxx::transaction_base& tx = batch.tx();
    batch_plan plan = read_locked_state(tx, facts);
    std::vector<apply_result> results;
    results.reserve(facts.size());
    for (const fact* f : facts) results.push_back(plan.add(*f));
    plan.write(tx);
    return results;
}

}  // namespace wxrecon::store
