// Refunds as WeChat Pay makes them: APIv3 POST /v3/refund/domestic/refunds
// and APIv2 /secapi/pay/refund accept a refund as PROCESSING, and it ends
// SUCCESS, ABNORMAL or CLOSED after a while (from the merchant's faults, drawn
// per refund from the seed, or as /sim/refund-plan set it), announced by a
// refund notification that goes through the notifier's fault plan. Refund
// queries in both versions report where each refund stands.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/json_writer.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;
using domain::refund_status;
namespace v2 = protocol::v2;

namespace {

std::string plan_key(std::string_view mchid, std::string_view out_refund_no) {
    return std::string(mchid) + "/" + std::string(out_refund_no);
}

// APIv2 refundquery answers at most this many refunds of an order per page (offset pages on).
constexpr std::size_t v2_refunds_per_page = 10;

}  // namespace

// ---------------------------------------------------------------- how a refund ends

simulator::refund_plan simulator::plan_for(const merchant_state& m, const std::string& out_refund_no) {
    const std::string key = plan_key(m.keys->mchid, out_refund_no);
    if (const auto it = refund_plans_.find(key); it != refund_plans_.end()) {
        const refund_plan planned = it->second;
        refund_plans_.erase(it);
        return planned;
    }
    // One draw per refund decides its end, so a seed ends the same refunds the same way whatever the timing.
    refund_plan p;
    p.after_ms = m.faults.refund_processing_ms;
    const double u = seeded_draw(options_.seed, "fault.refund_outcome", key);
    if (u < m.faults.refund_abnormal)
        p.status = refund_status::abnormal;
    else if (u < m.faults.refund_abnormal + m.faults.refund_closed)
        p.status = refund_status::closed;
    return p;
}

void simulator::start_refund(merchant_state& m, const std::string& out_refund_no) {
    const refund_plan p = plan_for(m, out_refund_no);
    if (p.after_ms <= 0) {
        finish(m.keys->mchid, out_refund_no, p);
        return;
    }
    const std::string mchid = m.keys->mchid;
    asio::co_spawn(io_, finish_later(mchid, out_refund_no, p), asio::detached);
}

void simulator::finish(const std::string& mchid, const std::string& out_refund_no, const refund_plan& p) {
    const auto done = model_.finish_refund(mchid, out_refund_no, p.status, now());
    if (done.code != outcome::ok || !p.notify) return;
    merchant_state* m = merchant(mchid);
    order_record* o = nullptr;
    model_.find_refund(mchid, out_refund_no, &o);
    if (m != nullptr && o != nullptr) notify_refund(*m, *o, *done.record);
}

asio::awaitable<void> simulator::finish_later(std::string mchid, std::string out_refund_no, refund_plan p) {
    asio::steady_timer wait(io_, scaled(p.after_ms));
    co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_) co_return;
    finish(mchid, out_refund_no, p);
}

// ---------------------------------------------------------------- APIv3

std::pair<int, std::string> simulator::v3_refund(merchant_state& m, const inbound_request& req) {
    const json_body j(req.body);
    if (!j.error.empty()) return {400, v3_error_body("PARAM_ERROR", j.error)};
    std::string out_trade_no = j.str("out_trade_no").value_or("");
    if (out_trade_no.empty()) {
        const std::string tid = j.str("transaction_id").value_or("");
        const order_record* o = tid.empty() ? nullptr : model_.find_by_transaction(m.keys->mchid, tid, now());
        if (o == nullptr)
            return tid.empty() ? std::pair{400, v3_error_body("PARAM_ERROR",
                                                              "缺少参数 out_trade_no 或 transaction_id")}
                               : v3_not_found(m);
        out_trade_no = o->out_trade_no;
    }
    const auto refund = j.nested_integer("amount", "refund");
    const auto total = j.nested_integer("amount", "total");
    const std::string out_refund_no = j.str("out_refund_no").value_or("");
    if (!refund || !total || out_refund_no.empty())
        return {400, v3_error_body("PARAM_ERROR", "缺少参数 out_refund_no, amount.refund 或 amount.total")};
    const order_record* order = model_.find(m.keys->mchid, out_trade_no, now());
    if (order != nullptr && order->payer_total != 0 && *total != order->payer_total)
        return {400, v3_error_body("PARAM_ERROR", "amount.total 与原订单金额不一致")};
    const auto result = model_.refund(m.keys->mchid, out_trade_no, out_refund_no, *refund,
                                      j.str("reason").value_or(""), j.str("notify_url").value_or(""), now());
    switch (result.code) {
        case outcome::ok: {
            // Accepted as it stands now (PROCESSING when new; the same refund again on re-entry).
            const order_record* o = model_.find(m.keys->mchid, out_trade_no, now());
            std::string answer = refund_api_object(*o, *result.record);
            if (result.created) start_refund(m, out_refund_no);
            return {200, std::move(answer)};
        }
        case outcome::not_found:
            return v3_not_found(m);
        case outcome::not_paid:
            return {403, v3_error_body("TRADE_ERROR", result.message)};
        case outcome::not_enough:
            return {403, v3_error_body("NOT_ENOUGH", result.message)};
        case outcome::params_differ:
            return {400, v3_error_body("INVALID_REQUEST", result.message)};
        default:
            return {400, v3_error_body("PARAM_ERROR", result.message)};
    }
}

std::pair<int, std::string> simulator::v3_refund_query(merchant_state& m, const inbound_request& req) {
    const std::string_view out_refund_no = std::string_view(req.path).substr(v3_refund_query_path.size());
    order_record* o = nullptr;
    const refund_record* r = model_.find_refund(m.keys->mchid, out_refund_no, &o);
    if (r == nullptr) return {404, v3_error_body("RESOURCE_NOT_EXISTS", "退款单不存在")};
    return {200, refund_api_object(*o, *r)};
}

// ---------------------------------------------------------------- APIv2

v2::fields simulator::v2_refund(merchant_state& m, const v2::fields& in, v2::sign_type) {
    // The client certificate was checked before (handle_v2): nothing here runs without it over HTTPS.
    const std::string& mchid = m.keys->mchid;
    std::string out_trade_no = v2_param(in, "out_trade_no");
    // docs/protocol-notes.md §7.10: transaction_id wins when both are given.
    if (const std::string tid = v2_param(in, "transaction_id"); !tid.empty() || out_trade_no.empty()) {
        const order_record* o = model_.find_by_transaction(mchid, tid, now());
        if (o == nullptr) return v2_failure("ORDERNOTEXIST", "订单不存在");
        out_trade_no = o->out_trade_no;
    }
    for (const char* k : {"out_refund_no", "total_fee", "refund_fee"})
        if (v2_param(in, k).empty()) return v2_failure("LACK_PARAMS", std::string("缺少参数 ") + k);
    const std::string fee = v2_param(in, "refund_fee");
    const std::string total = v2_param(in, "total_fee");
    if (!is_fen(fee) || !is_fen(total))
        return v2_failure("INVALID_REQUEST", "total_fee and refund_fee must be integer numbers of fen");
    const order_record* order = model_.find(mchid, out_trade_no, now());
    if (order != nullptr && order->payer_total != 0 && std::stoll(total) != order->payer_total)
        return v2_failure("PARAM_ERROR", "total_fee 与原订单金额不一致");
    const std::string out_refund_no = v2_param(in, "out_refund_no");
    const auto result = model_.refund(mchid, out_trade_no, out_refund_no, std::stoll(fee),
                                      v2_param(in, "refund_desc"), v2_param(in, "notify_url"), now());
    switch (result.code) {
        case outcome::ok: {
            const order_record* o = model_.find(mchid, out_trade_no, now());
            v2::fields f = v2_success();
            f["transaction_id"] = o->transaction_id;
            f["out_trade_no"] = o->out_trade_no;
            f["out_refund_no"] = result.record->out_refund_no;
            f["refund_id"] = result.record->refund_id;
            f["refund_fee"] = std::to_string(result.record->amount);
            f["total_fee"] = std::to_string(o->payer_total);
            f["cash_fee"] = std::to_string(o->payer_total);
            if (result.created) start_refund(m, out_refund_no);
            return f;
        }
        case outcome::not_found:
            return v2_failure("ORDERNOTEXIST", result.message);
        case outcome::not_enough:
            return v2_failure("NOTENOUGH", result.message);
        case outcome::not_paid:
            return v2_failure("TRADE_STATE_ERROR", result.message);
        default:
            return v2_failure("INVALID_REQUEST", result.message);
    }
}

v2::fields simulator::v2_refundquery(merchant_state& m, const v2::fields& in, v2::sign_type) {
    // docs/protocol-notes.md §7.10: by out_refund_no or refund_id the one refund; by transaction_id or
    // out_trade_no the order's refunds, ten per page from offset.
    const std::string& mchid = m.keys->mchid;
    order_record* o = nullptr;
    std::vector<const refund_record*> listed;
    if (const std::string no = v2_param(in, "out_refund_no"); !no.empty()) {
        if (const refund_record* r = model_.find_refund(mchid, no, &o)) listed.push_back(r);
    } else if (const std::string id = v2_param(in, "refund_id"); !id.empty()) {
        if (const refund_record* r = model_.find_refund_by_id(mchid, id, &o)) listed.push_back(r);
    } else {
        const std::string tid = v2_param(in, "transaction_id");
        o = tid.empty() ? model_.find(mchid, v2_param(in, "out_trade_no"), now())
                        : model_.find_by_transaction(mchid, tid, now());
        if (o != nullptr)
            for (const auto& r : o->refunds) listed.push_back(&r);
    }
    if (listed.empty()) return v2_failure("REFUNDNOTEXIST", "退款单不存在");
    const std::string offset_text = v2_param(in, "offset");
    if (!offset_text.empty() && !is_fen(offset_text)) return v2_failure("PARAM_ERROR", "offset 格式错误");
    const std::size_t offset = offset_text.empty() ? 0 : std::stoull(offset_text);
    if (offset >= listed.size()) return v2_failure("REFUNDNOTEXIST", "退款单不存在");
    const std::size_t count = std::min(v2_refunds_per_page, listed.size() - offset);
    v2::fields f = v2_success();
    f["transaction_id"] = o->transaction_id;
    f["out_trade_no"] = o->out_trade_no;
    f["total_fee"] = std::to_string(o->payer_total);
    f["cash_fee"] = std::to_string(o->payer_total);
    f["refund_count"] = std::to_string(count);
    if (listed.size() > v2_refunds_per_page) f["total_refund_count"] = std::to_string(listed.size());
    for (std::size_t n = 0; n < count; ++n) {
        const refund_record& r = *listed[offset + n];
        const std::string i = std::to_string(n);
        f["out_refund_no_" + i] = r.out_refund_no;
        f["refund_id_" + i] = r.refund_id;
        f["refund_channel_" + i] = "ORIGINAL";
        f["refund_fee_" + i] = std::to_string(r.amount);
        f["settlement_refund_fee_" + i] = std::to_string(r.amount);
        f["refund_status_" + i] = std::string(v2_refund_status(r.status));
        f["refund_recv_accout_" + i] = "支付用户零钱";
        if (r.success_at) f["refund_success_time_" + i] = beijing_spaced(r.success_at);
    }
    return f;
}

// ---------------------------------------------------------------- control

reply simulator::control_refund_plan(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    for (auto [k, v] : j.object) {
        const bool text = k == "mchid" || k == "out_refund_no" || k == "status";
        if (!text && k != "after_ms" && k != "notify")
            return control_error(
                400, "unknown key " + std::string(k) + " (mchid, out_refund_no, status, after_ms, notify)");
        if ((text && !v.is_string()) || (k == "after_ms" && !v.is_int64()) || (k == "notify" && !v.is_bool()))
            return control_error(400, std::string(k) + " has the wrong type");
    }
    const merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const std::string out_refund_no = j.str("out_refund_no").value_or("");
    if (out_refund_no.empty() || out_refund_no.size() > 64)
        return control_error(400, "out_refund_no must be 1 to 64 characters");
    if (model_.find_refund(m->keys->mchid, out_refund_no) != nullptr)
        return control_error(409, "a refund with this out_refund_no exists already");
    const std::string status = j.str("status").value_or("SUCCESS");
    const auto parsed = domain::parse_refund_status(status);
    if (!parsed || *parsed == refund_status::processing)
        return control_error(400, "status must be SUCCESS, ABNORMAL or CLOSED");
    refund_plan p;
    p.status = *parsed;
    p.after_ms = j.integer("after_ms").value_or(0);
    if (p.after_ms < 0 || p.after_ms > 86'400'000) return control_error(400, "after_ms must be 0..86400000");
    p.notify = j.boolean("notify").value_or(true);
    const std::string key = plan_key(m->keys->mchid, out_refund_no);
    if (refund_plans_.size() >= max_refund_plans && !refund_plans_.contains(key))
        return control_error(503, "at most 100000 refund plans wait for their refund");
    refund_plans_[key] = p;
    return json_reply(200, json_object()
                               .add("mchid", m->keys->mchid)
                               .add("out_refund_no", out_refund_no)
                               .add("status", status)
                               .add("after_ms", p.after_ms)
                               .add("notify", p.notify)
                               .str());
}

}  // namespace wxrecon::sim
