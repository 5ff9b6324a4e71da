#include "sim_wire.hpp"

#include "base/json_writer.hpp"
#include "base/time.hpp"

namespace wxrecon::sim {

using domain::refund_status;
using domain::trade_state;

std::string_view trade_state_desc(trade_state s) noexcept {
    switch (s) {
        case trade_state::success:
            return "支付成功";
        case trade_state::refund:
            return "转入退款";
        case trade_state::notpay:
            return "订单未支付";
        case trade_state::closed:
            return "订单已关闭";
        case trade_state::revoked:
            return "已撤销";
        case trade_state::userpaying:
            return "用户支付中";
        case trade_state::payerror:
            return "支付失败";
    }
    return "";
}

namespace {

bool is_paid(const order_record& o) {
    return o.state == trade_state::success || o.state == trade_state::refund;
}

}  // namespace

std::string transaction_object(const order_record& o, const protocol_variants& variants) {
    json_object j;
    if (!is_paid(o) && variants.unpaid_query_minimal) {
        j.add("mchid", o.mchid)
            .add("out_trade_no", o.out_trade_no)
            .add("trade_state", domain::to_string(o.state))
            .add("trade_state_desc", trade_state_desc(o.state));
        return j.str();
    }
    j.add("appid", o.appid).add("mchid", o.mchid).add("out_trade_no", o.out_trade_no);
    if (is_paid(o)) j.add("transaction_id", o.transaction_id);
    j.add("trade_type", "JSAPI")
        .add("trade_state", domain::to_string(o.state))
        .add("trade_state_desc", trade_state_desc(o.state));
    if (is_paid(o)) {
        j.add("bank_type", "OTHERS")
            .add("attach", o.attach)
            .add("success_time", format_rfc3339(o.success_at));
        j.add_raw("payer", json_object().add("openid", o.openid).str());
        // What WeChat took: the paid amount is the order's total as WeChat knows it.
        j.add_raw("amount", json_object()
                                .add("total", o.payer_total)
                                .add("payer_total", o.payer_total - o.coupon)
                                .add("currency", "CNY")
                                .add("payer_currency", "CNY")
                                .str());
    } else {
        j.add_raw("amount", json_object().add("total", o.amount_total).add("currency", "CNY").str());
    }
    return j.str();
}

namespace {

std::string refund_amount(const order_record& o, const refund_record& r) {
    return json_object()
        .add("total", o.payer_total)
        .add("refund", r.amount)
        .add("payer_total", o.payer_total)
        .add("payer_refund", r.amount)
        .add("settlement_total", o.payer_total)
        .add("settlement_refund", r.amount)
        .add("discount_refund", std::int64_t{0})
        .add("currency", "CNY")
        .str();
}

}  // namespace

std::string refund_api_object(const order_record& o, const refund_record& r) {
    json_object j;
    j.add("refund_id", r.refund_id)
        .add("out_refund_no", r.out_refund_no)
        .add("transaction_id", o.transaction_id)
        .add("out_trade_no", o.out_trade_no)
        .add("channel", "ORIGINAL")
        .add("user_received_account", "支付用户零钱");
    if (r.success_at) j.add("success_time", format_rfc3339(r.success_at));
    j.add("create_time", format_rfc3339(r.created_at))
        .add("status", domain::to_string(r.status))
        .add("funds_account", "AVAILABLE")
        .add_raw("amount", refund_amount(o, r));
    return j.str();
}

std::string refund_notification_object(const order_record& o, const refund_record& r) {
    json_object j;
    j.add("mchid", o.mchid)
        .add("out_trade_no", o.out_trade_no)
        .add("transaction_id", o.transaction_id)
        .add("out_refund_no", r.out_refund_no)
        .add("refund_id", r.refund_id)
        .add("refund_status", domain::to_string(r.status));
    if (r.success_at) j.add("success_time", format_rfc3339(r.success_at));
    j.add("user_received_account", "支付用户零钱")
        .add_raw("amount", json_object()
                               .add("total", o.payer_total)
                               .add("refund", r.amount)
                               .add("payer_total", o.payer_total)
                               .add("payer_refund", r.amount)
                               .str());
    return j.str();
}

std::string v3_error_body(std::string_view code, std::string_view message) {
    return json_object().add("code", code).add("message", message).str();
}

std::string beijing_compact(std::int64_t unix_seconds) {
    const std::string t = format_rfc3339(unix_seconds, 480);  // 2026-11-26T20:59:51+08:00
    return t.substr(0, 4) + t.substr(5, 2) + t.substr(8, 2) + t.substr(11, 2) + t.substr(14, 2) +
           t.substr(17, 2);
}

std::string beijing_spaced(std::int64_t unix_seconds) {
    const std::string t = format_rfc3339(unix_seconds, 480);
    return t.substr(0, 10) + " " + t.substr(11, 8);
}

protocol::v2::fields v2_order_fields(const order_record& o, std::string_view nonce) {
    protocol::v2::fields f{{"return_code", "SUCCESS"},
                           {"return_msg", "OK"},
                           {"appid", o.appid},
                           {"mch_id", o.mchid},
                           {"nonce_str", std::string(nonce)},
                           {"result_code", "SUCCESS"},
                           {"out_trade_no", o.out_trade_no},
                           {"trade_state", std::string(domain::to_string(o.state))},
                           {"trade_state_desc", std::string(trade_state_desc(o.state))}};
    if (is_paid(o)) {
        f["openid"] = o.openid;
        f["is_subscribe"] = "N";
        f["trade_type"] = "JSAPI";
        f["bank_type"] = "OTHERS";
        f["total_fee"] = std::to_string(o.payer_total);
        f["cash_fee"] = std::to_string(o.payer_total - o.coupon);
        if (o.coupon > 0) {
            f["coupon_fee"] = std::to_string(o.coupon);
            f["settlement_total_fee"] = std::to_string(o.payer_total - o.coupon);
        }
        f["fee_type"] = "CNY";
        f["transaction_id"] = o.transaction_id;
        f["time_end"] = beijing_compact(o.success_at);
        if (!o.attach.empty()) f["attach"] = o.attach;
    }
    return f;
}

protocol::v2::fields v2_refund_inner_fields(const order_record& o, const refund_record& r) {
    protocol::v2::fields f{{"transaction_id", o.transaction_id},
                           {"out_trade_no", o.out_trade_no},
                           {"refund_id", r.refund_id},
                           {"out_refund_no", r.out_refund_no},
                           {"total_fee", std::to_string(o.payer_total)},
                           {"settlement_total_fee", std::to_string(o.payer_total)},
                           {"refund_fee", std::to_string(r.amount)},
                           {"settlement_refund_fee", std::to_string(r.amount)},
                           {"refund_status", std::string(v2_refund_status(r.status))},
                           {"refund_recv_accout", "支付用户零钱"},
                           {"refund_account", "REFUND_SOURCE_RECHARGE_FUNDS"},
                           {"refund_request_source", "API"}};
    if (r.success_at) f["success_time"] = beijing_spaced(r.success_at);
    return f;
}

std::string v2_inner_xml(const protocol::v2::fields& f) {
    std::string xml = protocol::v2::to_xml(f);  // <xml>…</xml>
    return "<root>" + xml.substr(5, xml.size() - 11) + "</root>";
}

void v2_sign(protocol::v2::fields& f, std::string_view api_key, protocol::v2::sign_type type,
             bool include_sign_type) {
    f.erase("sign");
    if (include_sign_type)
        f["sign_type"] = type == protocol::v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
    else
        f.erase("sign_type");
    f["sign"] = protocol::v2::sign(f, api_key, type);
}

std::string_view v2_refund_status(refund_status s) noexcept {
    switch (s) {
        case refund_status::success:
            return "SUCCESS";
        case refund_status::abnormal:
            return "CHANGE";
        case refund_status::closed:
            return "REFUNDCLOSE";
        case refund_status::processing:
            return "PROCESSING";
    }
    return "";
}

std::string v2_param(const protocol::v2::fields& in, std::string_view name) {
    const auto it = in.find(name);
    return it == in.end() ? std::string() : it->second;
}

protocol::v2::fields v2_success() {
    return {{"return_code", "SUCCESS"}, {"return_msg", "OK"}, {"result_code", "SUCCESS"}};
}

bool is_fen(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos &&
           text.size() <= 12;
}

protocol::v2::fields v2_failure(std::string_view err_code, std::string_view message) {
    if (err_code.empty()) return {{"return_code", "FAIL"}, {"return_msg", std::string(message)}};
    return {{"return_code", "SUCCESS"},
            {"return_msg", "OK"},
            {"result_code", "FAIL"},
            {"err_code", std::string(err_code)},
            {"err_code_des", std::string(message)}};
}

}  // namespace wxrecon::sim
