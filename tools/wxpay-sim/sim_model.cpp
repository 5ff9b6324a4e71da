#include "sim_model.hpp"

#include <algorithm>
#include <cctype>

#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "sim_faults.hpp"

namespace wxrecon::sim {

using domain::refund_status;
using domain::trade_state;

std::int64_t order_record::refunded() const noexcept {
    std::int64_t sum = 0;
    for (const auto& r : refunds)
        if (r.status != refund_status::closed) sum += r.amount;
    return sum;
}

std::string_view to_string(outcome o) noexcept {
    switch (o) {
        case outcome::ok:
            return "ok";
        case outcome::not_found:
            return "not_found";
        case outcome::already_paid:
            return "already_paid";
        case outcome::closed:
            return "closed";
        case outcome::params_differ:
            return "params_differ";
        case outcome::invalid:
            return "invalid";
        case outcome::not_enough:
            return "not_enough";
        case outcome::not_paid:
            return "not_paid";
        case outcome::limit_reached:
            return "limit_reached";
    }
    return "?";
}

ledger_model::ledger_model(std::uint64_t seed, std::size_t max_orders)
    : seed_(seed), max_orders_(max_orders) {}

std::string ledger_model::key(std::string_view mchid, std::string_view id) {
    std::string k;
    k.reserve(mchid.size() + id.size() + 1);
    k.append(mchid).push_back('\0');
    k.append(id);
    return k;
}

std::string ledger_model::next_id(std::string_view prefix, std::size_t digits) {
    // Unique by the counter, varied by the seed: ids look like WeChat's and repeat with the seed.
    std::string id(prefix);
    const std::uint64_t n = ++counter_;
    const std::uint64_t mix = seeded_hash(seed_, "id", prefix, n);
    std::string tail = std::to_string(n);
    std::string noise = std::to_string(mix);
    while (id.size() + tail.size() < digits) {
        id.push_back(noise.empty() ? '0' : noise.back());
        if (!noise.empty()) noise.pop_back();
    }
    return id + tail;
}

order_record* ledger_model::lookup(std::string_view mchid, std::string_view out_trade_no) {
    const auto it = orders_.find(key(mchid, out_trade_no));
    return it == orders_.end() ? nullptr : &it->second;
}

void ledger_model::apply_expiry(order_record& o, std::int64_t now) {
    if (o.state == trade_state::notpay && now >= o.expire_at) o.state = trade_state::closed;
}

op_result<order_record> ledger_model::prepay(const order_request& request, std::int64_t now) {
    op_result<order_record> r;
    if (request.amount_total <= 0)
        return {outcome::invalid, nullptr, "amount.total must be a positive integer", false};
    if (request.out_trade_no.size() < 6 || request.out_trade_no.size() > 32)
        return {outcome::invalid, nullptr, "out_trade_no must be 6 to 32 characters", false};
    for (const char c : request.out_trade_no)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '|' && c != '*')
            return {outcome::invalid, nullptr, "out_trade_no may hold only [0-9A-Za-z_-|*]", false};
    if (order_record* existing = lookup(request.mchid, request.out_trade_no)) {
        apply_expiry(*existing, now);
        if (existing->prepay_fingerprint != request.fingerprint)
            return {outcome::params_differ, existing, "请求重入时，参数与首次请求时不一致", false};
        if (existing->state == trade_state::success || existing->state == trade_state::refund)
            return {outcome::already_paid, existing, "该订单已支付", false};
        if (existing->state == trade_state::closed) return {outcome::closed, existing, "订单已关闭", false};
        return {outcome::ok, existing, {}, false};
    }
    if (orders_.size() >= max_orders_)
        return {outcome::limit_reached, nullptr, "the simulator holds its maximum number of orders", false};
    order_record o;
    o.mchid = request.mchid;
    o.out_trade_no = request.out_trade_no;
    o.appid = request.appid;
    o.description = request.description;
    o.openid = request.openid;
    o.attach = request.attach;
    o.notify_url = request.notify_url;
    o.amount_total = request.amount_total;
    o.version = request.version;
    o.v2_sign = request.v2_sign;
    o.created_at = now;
    // docs/protocol-notes.md §5.1: earlier than now + 1 min is raised to it; later than 90 days is capped.
    std::int64_t expire = request.expire_at.value_or(now + default_expiry_seconds);
    expire = std::max<std::int64_t>(expire, now + 60);
    expire = std::min<std::int64_t>(expire, now + std::int64_t{90} * 24 * 3600);
    o.expire_at = expire;
    o.prepay_id = "wx" + next_id("", 34);
    o.prepay_fingerprint = request.fingerprint;
    auto [it, inserted] = orders_.emplace(key(o.mchid, o.out_trade_no), std::move(o));
    (void)inserted;
    return {outcome::ok, &it->second, {}, true};
}

order_record* ledger_model::find(std::string_view mchid, std::string_view out_trade_no, std::int64_t now) {
    order_record* o = lookup(mchid, out_trade_no);
    if (o != nullptr) apply_expiry(*o, now);
    return o;
}

order_record* ledger_model::find_by_transaction(std::string_view mchid, std::string_view transaction_id,
                                                std::int64_t now) {
    const auto it = by_transaction_.find(key(mchid, transaction_id));
    if (it == by_transaction_.end()) return nullptr;
    order_record& o = orders_.at(it->second);
    apply_expiry(o, now);
    return &o;
}

op_result<order_record> ledger_model::pay(std::string_view mchid, std::string_view out_trade_no,
                                          std::optional<std::int64_t> amount, std::int64_t now) {
    order_record* o = find(mchid, out_trade_no, now);
    if (o == nullptr) return {outcome::not_found, nullptr, "订单不存在", false};
    if (o->state == trade_state::success || o->state == trade_state::refund)
        return {outcome::already_paid, o, "该订单已支付", false};
    if (o->state == trade_state::closed) return {outcome::closed, o, "订单已关闭", false};
    const std::int64_t paid = amount.value_or(o->amount_total);
    if (paid <= 0) return {outcome::invalid, o, "the paid amount must be positive", false};
    o->state = trade_state::success;
    o->payer_total = paid;
    o->success_at = now;
    o->transaction_id = next_id("42", 28);
    by_transaction_.emplace(key(o->mchid, o->transaction_id), key(o->mchid, o->out_trade_no));
    return {outcome::ok, o, {}, false};
}

op_result<order_record> ledger_model::close(std::string_view mchid, std::string_view out_trade_no,
                                            std::int64_t now) {
    order_record* o = find(mchid, out_trade_no, now);
    if (o == nullptr) return {outcome::not_found, nullptr, "订单不存在", false};
    if (o->state == trade_state::success || o->state == trade_state::refund)
        return {outcome::already_paid, o, "该订单已支付", false};
    if (o->state == trade_state::closed) return {outcome::closed, o, "订单已关闭", false};
    o->state = trade_state::closed;
    return {outcome::ok, o, {}, false};
}

op_result<order_record> ledger_model::expire(std::string_view mchid, std::string_view out_trade_no,
                                             std::int64_t now) {
    order_record* o = find(mchid, out_trade_no, now);
    if (o == nullptr) return {outcome::not_found, nullptr, "订单不存在", false};
    if (o->state != trade_state::notpay)
        return {outcome::closed, o, "only an unpaid order can expire", false};
    o->expire_at = now;
    apply_expiry(*o, now);
    return {outcome::ok, o, {}, false};
}

op_result<refund_record> ledger_model::refund(std::string_view mchid, std::string_view out_trade_no,
                                              std::string_view out_refund_no, std::int64_t amount,
                                              std::string_view reason, std::string_view notify_url,
                                              std::int64_t now) {
    order_record* o = find(mchid, out_trade_no, now);
    if (o == nullptr) return {outcome::not_found, nullptr, "订单不存在", false};
    if (out_refund_no.empty() || out_refund_no.size() > 64)
        return {outcome::invalid, nullptr, "out_refund_no must be 1 to 64 characters", false};
    if (order_record* owner = nullptr; refund_record* existing = find_refund(mchid, out_refund_no, &owner)) {
        if (owner != o || existing->amount != amount)
            return {outcome::params_differ, existing, "请求重入时，参数与首次请求时不一致", false};
        return {outcome::ok, existing, {}, false};
    }
    if (o->state != trade_state::success && o->state != trade_state::refund)
        return {outcome::not_paid, nullptr, "订单未支付", false};
    if (amount <= 0) return {outcome::invalid, nullptr, "amount.refund must be a positive integer", false};
    if (amount > o->payer_total - o->coupon - o->refunded())
        return {outcome::not_enough, nullptr, "退款金额超过可退金额", false};
    if (o->refunds.size() >= max_refunds_per_order)
        return {outcome::limit_reached, nullptr, "at most 50 refunds per order", false};
    refund_record r;
    r.out_refund_no = std::string(out_refund_no);
    r.refund_id = next_id("50", 29);
    r.amount = amount;
    r.created_at = now;
    r.reason = std::string(reason);
    r.notify_url = std::string(notify_url);
    o->refunds.push_back(std::move(r));
    o->state = trade_state::refund;
    by_refund_.emplace(key(mchid, out_refund_no), key(o->mchid, o->out_trade_no));
    by_refund_id_.emplace(key(mchid, o->refunds.back().refund_id), std::string(out_refund_no));
    return {outcome::ok, &o->refunds.back(), {}, true};
}

op_result<refund_record> ledger_model::finish_refund(std::string_view mchid, std::string_view out_refund_no,
                                                     refund_status status, std::int64_t now) {
    refund_record* r = find_refund(mchid, out_refund_no);
    if (r == nullptr) return {outcome::not_found, nullptr, "退款单不存在", false};
    if (r->status != refund_status::processing)
        return {outcome::closed, r, "the refund already has its final status", false};
    r->status = status;
    if (status == refund_status::success) r->success_at = now;
    return {outcome::ok, r, {}, false};
}

refund_record* ledger_model::find_refund(std::string_view mchid, std::string_view out_refund_no,
                                         order_record** order) {
    const auto it = by_refund_.find(key(mchid, out_refund_no));
    if (it == by_refund_.end()) return nullptr;
    order_record& o = orders_.at(it->second);
    if (order != nullptr) *order = &o;
    for (auto& r : o.refunds)
        if (r.out_refund_no == out_refund_no) return &r;
    return nullptr;
}

refund_record* ledger_model::find_refund_by_id(std::string_view mchid, std::string_view refund_id,
                                               order_record** order) {
    const auto it = by_refund_id_.find(key(mchid, refund_id));
    return it == by_refund_id_.end() ? nullptr : find_refund(mchid, it->second, order);
}

std::vector<const order_record*> ledger_model::orders_of(std::string_view mchid) const {
    std::vector<const order_record*> out;
    const std::string prefix = key(mchid, "");
    for (auto it = orders_.lower_bound(prefix); it != orders_.end() && it->first.starts_with(prefix); ++it)
        out.push_back(&it->second);
    return out;
}

std::string ledger_model::ledger_json() const {
    std::string out = "{\"orders\":[";
    bool first = true;
    for (const auto& [k, o] : orders_) {
        (void)k;
        std::string refunds = "[";
        for (std::size_t i = 0; i < o.refunds.size(); ++i) {
            const auto& r = o.refunds[i];
            json_object j;
            j.add("out_refund_no", r.out_refund_no)
                .add("refund_id", r.refund_id)
                .add("amount", r.amount)
                .add("status", domain::to_string(r.status))
                .add("create_time", format_rfc3339(r.created_at));
            if (r.success_at) j.add("success_time", format_rfc3339(r.success_at));
            refunds += (i ? "," : "") + j.str();
        }
        refunds += "]";
        json_object j;
        j.add("mchid", o.mchid)
            .add("out_trade_no", o.out_trade_no)
            .add("api_version", o.version == api_version::v3 ? "v3" : "v2")
            .add("trade_state", domain::to_string(o.state))
            .add("amount_total", o.amount_total)
            .add("payer_total", o.payer_total)
            .add("coupon", o.coupon)
            .add("refunded", o.refunded());
        if (!o.transaction_id.empty()) j.add("transaction_id", o.transaction_id);
        if (o.success_at) j.add("success_time", format_rfc3339(o.success_at));
        j.add_raw("refunds", refunds);
        out += (first ? "" : ",") + j.str();
        first = false;
    }
    return out + "]}";
}

}  // namespace wxrecon::sim
