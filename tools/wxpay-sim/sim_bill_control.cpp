// The /sim controls behind the bills (docs/interfaces.md §1.4): payments nobody announced, the fee rate of
// new payments, the bytes of the files (the UNCONFIRMED readings), bills held "being made" for a number of
// asks, and damaged downloads. Same style as sim_control.cpp: a JSON body, 200 with the new setting.
#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"

namespace wxrecon::sim {

namespace {

// "trade/2026-03-14": the key of a merchant's bill settings; nullopt with a message on a bad bill or date.
result<std::string> bill_key(const json_body& j) {
    const std::string bill = j.str("bill").value_or("");
    const std::string date = j.str("bill_date").value_or("");
    if (bill != "trade" && bill != "fundflow")
        return make_error(errc::invalid_argument, "bill must be trade or fundflow");
    if (!beijing_day_start(date)) return make_error(errc::invalid_argument, "bill_date must be yyyy-MM-dd");
    return bill + "/" + date;
}

std::string style_json(const bill_style& s) {
    return json_object().add("bom", s.bom).add("crlf", s.crlf).add("count_dot_zero", s.count_dot_zero).str();
}

}  // namespace

reply simulator::control_hand_payment(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const std::int64_t amount = j.integer("amount").value_or(0);
    const std::int64_t coupon = j.integer("coupon").value_or(0);
    if (amount <= 0 || coupon < 0 || coupon >= amount)
        return control_error(400, "amount must be positive and coupon in [0, amount)");
    std::int64_t at = now();
    if (const auto text = j.str("at")) {
        const auto t = parse_rfc3339(*text);
        if (!t) return control_error(400, "at: " + t.err().message);
        at = *t;
    }
    // Made at WeChat Pay without the merchant's system: no prepay it sent, no notification to it.
    order_request r;
    r.mchid = m->keys->mchid;
    r.appid = m->keys->appid;
    r.out_trade_no = j.str("out_trade_no").value_or("");
    r.description = j.str("description").value_or("hand payment");
    r.openid = "o" + hex_lower(crypto::sha256("hand:" + r.out_trade_no)).substr(0, 27);
    r.amount_total = amount;
    r.version = m->keys->version;
    r.fingerprint = "hand:" + r.out_trade_no;
    const auto placed = model_.prepay(r, now());
    if (placed.code != outcome::ok || !placed.created)
        return control_error(409, r.out_trade_no + ": " +
                                      (placed.created ? std::string(to_string(placed.code)) : "exists") +
                                      ": " + placed.message);
    const auto paid = model_.pay(r.mchid, r.out_trade_no, amount, at);
    if (paid.code != outcome::ok)
        return control_error(409, std::string(to_string(paid.code)) + ": " + paid.message);
    paid.record->coupon = coupon;
    paid.record->fee_rate_bp = m->fee_rate_bp;
    return json_reply(200, json_object()
                               .add("out_trade_no", r.out_trade_no)
                               .add("transaction_id", paid.record->transaction_id)
                               .add("success_time", format_rfc3339(paid.record->success_at))
                               .add("paid", amount)
                               .add("coupon", coupon)
                               .str());
}

reply simulator::control_fee_rate(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const auto bp = j.integer("fee_rate_bp");
    if (!bp || *bp < 0 || *bp > 10000) return control_error(400, "fee_rate_bp must be 0..10000");
    std::vector<merchant_state*> targets;
    if (const auto mchid = j.str("mchid")) {
        merchant_state* m = merchant(*mchid);
        if (m == nullptr) return control_error(404, "unknown mchid");
        targets.push_back(m);
    } else {
        for (auto& [id, m] : merchants_) targets.push_back(&m);
    }
    for (merchant_state* m : targets) m->fee_rate_bp = *bp;
    return json_reply(200, json_object().add("fee_rate_bp", *bp).str());
}

reply simulator::control_bill_style(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    m->style.bom = j.boolean("bom").value_or(m->style.bom);
    m->style.crlf = j.boolean("crlf").value_or(m->style.crlf);
    m->style.count_dot_zero = j.boolean("count_dot_zero").value_or(m->style.count_dot_zero);
    return json_reply(200, style_json(m->style));
}

reply simulator::control_bill_creating(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const auto key = bill_key(j);
    if (!key) return control_error(400, key.err().message);
    const std::int64_t requests = j.integer("requests").value_or(1);
    if (requests < 0 || requests > 1000000) return control_error(400, "requests must be 0..1000000");
    if (requests == 0)
        m->bills_creating.erase(*key);
    else
        m->bills_creating[*key] = static_cast<int>(requests);
    return json_reply(200, json_object().add("bill", *key).add("requests", requests).str());
}

reply simulator::control_bill_corrupt(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const auto key = bill_key(j);
    if (!key) return control_error(400, key.err().message);
    const std::string name = j.str("corruption").value_or("");
    const auto damage = parse_corruption(name);
    if (!damage) return control_error(400, "corruption must be flip_digit, truncate or none");
    const std::string hash = j.str("hash").value_or("good");
    if (hash != "good" && hash != "served") return control_error(400, "hash must be good or served");
    if (*damage == bill_corruption::none)
        m->bills_corrupt.erase(*key);
    else
        m->bills_corrupt[*key] = {*damage, hash == "served"};
    return json_reply(200, json_object().add("bill", *key).add("corruption", name).add("hash", hash).str());
}

std::int64_t simulator::fee_adjustment_of(const merchant_state& m, std::string_view bill_date) {
    const auto it = m.fee_adjustments.find(bill_date);
    return it == m.fee_adjustments.end() ? 0 : it->second;
}

// WeChat Pay debits (or credits) fees the trade bill does not show: the fund-flow bill of that day gets a
// 手续费调整 line, and the day's fee totals of the two bills disagree.
reply simulator::control_fee_adjustment(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const std::string date = j.str("bill_date").value_or("");
    if (!beijing_day_start(date)) return control_error(400, "bill_date must be yyyy-MM-dd");
    const auto fen = j.integer("amount");
    if (!fen || *fen < -100'000'000 || *fen > 100'000'000)
        return control_error(400, "amount must be fen, -100000000..100000000 (0 clears)");
    if (*fen == 0)
        m->fee_adjustments.erase(date);
    else
        m->fee_adjustments[date] = *fen;
    return json_reply(200, json_object().add("bill_date", date).add("amount", *fen).str());
}

}  // namespace wxrecon::sim
