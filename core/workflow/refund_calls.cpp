#include "workflow/refund_calls.hpp"

#include <algorithm>
#include <iterator>

#include "base/json_writer.hpp"
#include "base/percent.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::workflow {

namespace v2 = protocol::v2;

store::stored_refund_request build_refund_request(const config::merchant_config& m,
                                                  const std::string& public_base_url,
                                                  const store::refund_order& o) {
    store::stored_refund_request out;
    if (m.version == config::api_version::v3) {
        out.api_version = "v3";
        json_object body;
        body.add("out_trade_no", o.out_trade_no).add("out_refund_no", o.out_refund_no);
        if (o.reason && !o.reason->empty()) body.add("reason", *o.reason);
        body.add("notify_url", public_base_url + "/wxpay/v3/notify/" + o.mchid)
            .add_raw("amount", json_object()
                                   .add("refund", o.amount)
                                   .add("total", o.amount_total)
                                   .add("currency", o.currency)
                                   .str());
        out.request = body.str();
    } else {
        out.api_version = "v2";
        // transaction_id identifies the payment beyond doubt (it wins over out_trade_no at WeChat Pay).
        v2::fields f{{"appid", m.appid},
                     {"transaction_id", o.transaction_id},
                     {"out_trade_no", o.out_trade_no},
                     {"out_refund_no", o.out_refund_no},
                     {"total_fee", std::to_string(o.amount_total)},
                     {"refund_fee", std::to_string(o.amount)},
                     {"refund_fee_type", o.currency},
                     {"notify_url", public_base_url + "/wxpay/v2/refund-notify/" + o.mchid}};
        if (o.reason && !o.reason->empty()) f.emplace("refund_desc", *o.reason);
        out.request = v2::to_xml(f);
    }
    return out;
}

boost::asio::awaitable<wechat::call_result> send_refund(wechat::pay_client& client,
                                                        const wechat::merchant_access& access,
                                                        const config::merchant_config& m,
                                                        const store::stored_refund_request& request) {
    if (request.api_version == "v3") {
        std::string method = "POST", path = "/v3/refund/domestic/refunds", body = request.request;
        co_return co_await client.v3(access, std::move(method), std::move(path), std::move(body),
                                     wechat::retry_safety::once_only);
    }
    auto fields = v2::parse_xml(request.request);
    if (!fields) {
        wechat::call_result broken;
        broken.error = "the stored refund request does not parse: " + fields.err().message;
        co_return broken;  // never sent
    }
    std::string path = "/secapi/pay/refund";
    co_return co_await client.v2(access, std::move(path), std::move(*fields), v2_sign_type(m),
                                 wechat::retry_safety::once_only);
}

boost::asio::awaitable<wechat::call_result> query_refund(wechat::pay_client& client,
                                                         const wechat::merchant_access& access,
                                                         const config::merchant_config& m,
                                                         const std::string& out_refund_no) {
    if (m.version == config::api_version::v3) {
        std::string method = "GET", path = "/v3/refund/domestic/refunds/" + percent_encode(out_refund_no),
                    no_body;
        co_return co_await client.v3(access, std::move(method), std::move(path), std::move(no_body),
                                     wechat::retry_safety::idempotent);
    }
    v2::fields fields{{"appid", m.appid}, {"out_refund_no", out_refund_no}};
    std::string path = "/pay/refundquery";
    co_return co_await client.v2(access, std::move(path), std::move(fields), v2_sign_type(m),
                                 wechat::retry_safety::idempotent);
}

store::refund_attempt_outcome classify_refund_answer(const wechat::call_result& r) {
    using store::refund_attempt_outcome;
    switch (r.outcome) {
        case wechat::call_outcome::ok:
            return refund_attempt_outcome::accepted;
        case wechat::call_outcome::rejected: {
            // Codes that ask for a retry, or say nothing about whether the refund was made.
            static constexpr std::string_view undecided[] = {"SYSTEMERROR", "SYSTEM_ERROR",
                                                             "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED",
                                                             "FREQUENCY_LIMIT_EXCEED"};
            if (std::find(std::begin(undecided), std::end(undecided), r.code) != std::end(undecided))
                return refund_attempt_outcome::unknown;
            return r.code.empty() ? refund_attempt_outcome::unknown : refund_attempt_outcome::refused;
        }
        case wechat::call_outcome::unreachable:
            // Never sent: nothing happened at WeChat Pay, but the request stays ours to resend.
            return refund_attempt_outcome::unknown;
        default:
            return refund_attempt_outcome::unknown;
    }
}

bool is_refund_not_found(const wechat::call_result& r) {
    return r.outcome == wechat::call_outcome::rejected &&
           (r.code == "RESOURCE_NOT_EXISTS" || r.code == "ORDER_NOT_EXIST" || r.code == "REFUNDNOTEXIST" ||
            r.code == "NOT_FOUND");
}

result<domain::fact> refund_fact_of(const config::merchant_config& m, const wechat::call_result& answer,
                                    std::string_view out_refund_no, std::string_view event_type,
                                    domain::micros sent_at) {
    domain::fact f;
    f.mchid = m.mchid;
    f.event_type = std::string(event_type);
    f.observed_at = sent_at;
    domain::refund_fact r;
    if (m.version == config::api_version::v3) {
        f.source = domain::fact_source::refund_query_v3;
        auto parsed = protocol::v3::parse_refund_answer(answer.body);
        if (!parsed) return parsed.err();
        r = std::move(*parsed);
        f.payload_json = answer.body;
    } else {
        f.source = domain::fact_source::refund_query_v2;
        auto parsed = v2::read_refund_query(answer.fields, out_refund_no);
        if (!parsed) return parsed.err();
        r = std::move(*parsed);
        f.payload_json = v2::to_json(answer.fields);
    }
    if (r.out_refund_no != out_refund_no)
        return make_error(errc::parse_error, "the answer is about refund " + r.out_refund_no + ", not " +
                                                 std::string(out_refund_no));
    f.occurred_at = r.success_time.value_or(sent_at);
    f.body = std::move(r);
    return f;
}

std::string refund_id_of(const config::merchant_config& m, const wechat::call_result& answer) {
    if (m.version == config::api_version::v2) return v2::field(answer.fields, "refund_id");
    auto parsed = protocol::v3::parse_refund_answer(answer.body);
    return parsed ? parsed->refund_id : std::string();
}

}  // namespace wxrecon::workflow
