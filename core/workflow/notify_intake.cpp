#include "workflow/notify_intake.hpp"

#include <algorithm>
#include <charconv>
#include <spdlog/spdlog.h>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::workflow {
namespace {

using namespace std::chrono;

std::int64_t system_now_micros() {
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string_view v3_kind(std::string_view event_type) {
    if (event_type.starts_with("TRANSACTION.")) return "payment";
    if (event_type.starts_with("REFUND.")) return "refund";
    return "unknown";
}

bool handled_v3_event(std::string_view event_type) {
    return event_type == "TRANSACTION.SUCCESS" || event_type == "REFUND.SUCCESS" ||
           event_type == "REFUND.ABNORMAL" || event_type == "REFUND.CLOSED";
}

std::string_view reason_of(errc code) {
    switch (code) {
    case errc::stale_timestamp: return "stale_timestamp";
    case errc::unknown_serial: return "unknown_serial";
    case errc::bad_signature: return "bad_signature";
    case errc::forbidden_xml: return "forbidden_xml";
    case errc::decrypt_failed: return "decrypt_failed";
    case errc::invalid_argument: return "missing_signature";
    default: return "malformed";
    }
}


// What every notification fact carries: where it came from and the evidence as received.
domain::fact notification_fact(const inbound_request& req, const std::string& mchid, domain::fact_source source,
                               std::string event_type, std::int64_t now_us) {
    domain::fact f;
    f.mchid = mchid;
    f.source = source;
    f.event_type = std::move(event_type);
    f.observed_at = now_us;
    f.raw_body = req.body;
    f.raw_headers_json = req.headers_json();
    return f;
}

}  // namespace

notification_intake::notification_intake(key_holder& keys, store::ledger& ledger, store::rejected_log& rejected,
                                         std::shared_ptr<metrics> m, clock_fn now)
    : keys_(keys),
      ledger_(ledger),
      rejected_(rejected),
      metrics_(std::move(m)),
      now_(now ? std::move(now) : clock_fn(system_now_micros)) {}

reply notification_intake::v3_failure(int status, std::string_view message) {
    return reply{status, "application/json", json_object().add("code", "FAIL").add("message", message).str()};
}

reply notification_intake::v2_failure(std::string_view message) {
    protocol::v2::fields f{{"return_code", "FAIL"}, {"return_msg", std::string(message)}};
    return reply{200, "application/xml", protocol::v2::to_xml(f)};
}

reply notification_intake::v2_success() {
    return reply{200, "application/xml",
                 "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"};
}

void notification_intake::count(std::string_view api, std::string_view kind, std::string_view result) {
    metrics_->add("wxrecon_notifications_total",
                  {{"api", std::string(api)}, {"kind", std::string(kind)}, {"result", std::string(result)}});
    if (result == "accepted") metrics_->set("wxrecon_last_accepted_notification_timestamp_seconds",
                                            static_cast<double>(now_() / 1'000'000));
}

// The one line every notification leaves in the log, whatever became of it.
void notification_intake::finish(const inbound_request& req, std::string_view api, std::string_view kind,
                                 std::string_view result, std::string_view mchid, std::string_view out_trade_no,
                                 std::string_view detail) {
    count(api, kind, result);
    const double ms = req.received == steady_clock::time_point{}
                          ? 0.0
                          : duration<double, std::milli>(steady_clock::now() - req.received).count();
    spdlog::log(result == "error" ? spdlog::level::warn : spdlog::level::info,
                "notify: result={} api={} kind={} mchid={} out_trade_no={} request_id={} ms={:.1f}{}{}", result, api,
                kind, mchid, out_trade_no.empty() ? "-" : out_trade_no, req.request_id, ms, detail.empty() ? "" : " ",
                detail);
}

reply notification_intake::too_large(std::string_view target) {
    const bool v2 = target.starts_with("/wxpay/v2/");
    inbound_request req;  // only the target is known: no headers, so no Request-ID, and no timing
    req.path = std::string(target);
    req.request_id = "-";
    finish(req, v2 ? "v2" : "v3", "unknown", "rejected", "-", {}, "reason=body_too_large path=" + log_quote(target, 120));
    if (v2) return reply{413, "application/xml", v2_failure("body too large").body};
    return v3_failure(413, "body too large");
}

reply notification_intake::reject(const inbound_request& req, std::string_view mchid, std::string_view api,
                                  std::string_view kind, std::string_view reason, int v3_status, std::string message,
                                  bool v2) {
    finish(req, api, kind, "rejected", mchid, {},
           fmt::format("reason={} remote={} detail={}", reason, req.remote_addr, log_quote(message)));
    rejected_.record(store::rejected_entry{req.path, std::string(mchid), std::string(reason), req.remote_addr,
                                           req.headers_json(), req.body});
    return v2 ? v2_failure(message) : v3_failure(v3_status, message);
}

boost::asio::awaitable<std::optional<reply>> notification_intake::apply(const inbound_request& req,
                                                                        const domain::fact& f, std::string_view api,
                                                                        std::string_view kind, bool v2,
                                                                        steady_clock::time_point started) {
    const std::string mchid = f.mchid;
    const std::string out_trade_no = f.out_trade_no();
    std::string failure;
    try {
        const auto until = started + notification_deadline;
        const auto r = co_await ledger_.apply(f, until);
        std::string_view result = "duplicate";
        if (r.outcome == domain::outcome::applied || r.outcome == domain::outcome::regression) result = "accepted";
        if (r.outcome == domain::outcome::unmatched) co_return std::nullopt;
        std::string opened;
        for (const auto k : r.opened) (opened += opened.empty() ? "" : ",") += domain::to_string(k);
        finish(req, api, kind, result, mchid, out_trade_no,
               fmt::format("notify_id={} opened={}", f.notify_id.value_or("-"),
                           opened.empty() ? "-" : opened));
        co_return v2 ? v2_success() : reply{204, "", ""};
    } catch (const store::database_unavailable& e) {
        failure = std::string("database unavailable: ") + e.what();
    } catch (const store::database_overloaded& e) {
        failure = std::string("database overloaded: ") + e.what();
    } catch (const store::deadline_exceeded&) {
        failure = "no commit within the notification deadline";
    } catch (const store::commit_not_confirmed& e) {
        failure = std::string("not committed: ") + e.what();
    } catch (const std::exception& e) {
        failure = std::string("not applied: ") + e.what();
    }
    finish(req, api, kind, "error", mchid, out_trade_no, "error=" + log_quote(failure));
    // WeChat Pay retries on any non-success: nothing was acknowledged, nothing is lost.
    co_return v2 ? reply{503, "application/xml", v2_failure("temporarily unavailable").body}
                 : v3_failure(503, "temporarily unavailable, retry later");
}

boost::asio::awaitable<reply> notification_intake::handle_v3(const inbound_request& req, std::string mchid) {
    const auto started = steady_clock::now();
    const auto keys = keys_.get();
    const config::merchant_keys* merchant = keys->find(mchid);
    if (merchant == nullptr) {
        finish(req, "v3", "unknown", "rejected", mchid, {}, "reason=unknown_merchant");
        co_return v3_failure(404, "unknown merchant");
    }

    // Verify before anything in the body is trusted.
    const std::string_view signature = req.header("Wechatpay-Signature");
    if (protocol::v3::is_probe(signature)) {
        metrics_->add("wxrecon_signature_probes_total");
        co_return reject(req, mchid, "v3", "unknown", "probe", 401, "signature probe refused", false);
    }
    const protocol::v3::signature_headers sig{req.header("Wechatpay-Timestamp"), req.header("Wechatpay-Nonce"),
                                              signature, req.header("Wechatpay-Serial")};
    const auto now_us = now_();
    if (auto ok = protocol::v3::verify_signature(sig, req.body, now_us / 1'000'000,
                                                 [merchant](std::string_view s) { return merchant->find_wechatpay_key(s); });
        !ok) {
        // A platform certificate wxrecon has not downloaded yet (a rotation): refused now, WeChat Pay retries,
        // and the refresh this starts lets the retry verify.
        if (ok.err().code == errc::unknown_serial && on_unknown_serial && !sig.serial.starts_with("PUB_KEY_ID_"))
            on_unknown_serial(mchid);
        co_return reject(req, mchid, "v3", "unknown", reason_of(ok.err().code), 401, ok.err().message, false);
    }

    auto env = protocol::v3::parse_envelope(req.body);
    if (!env) co_return reject(req, mchid, "v3", "unknown", "malformed", 400, env.err().message, false);
    const std::string_view kind = v3_kind(env->event_type);
    if (!handled_v3_event(env->event_type)) {
        finish(req, "v3", kind, "ignored", mchid, {}, "event_type=" + env->event_type);
        co_return reply{204, "", ""};
    }
    if (!merchant->apiv3_key) {
        finish(req, "v3", kind, "error", mchid, {}, "error=\"no apiv3 key configured\"");
        co_return v3_failure(503, "merchant has no APIv3 key configured");
    }
    auto plain = protocol::v3::decrypt_resource(env->res, *merchant->apiv3_key);
    if (!plain) co_return reject(req, mchid, "v3", kind, "decrypt_failed", 400, plain.err().message, false);

    domain::fact f = notification_fact(req, mchid, domain::fact_source::notify_v3, env->event_type, now_us);
    f.notify_id = env->id;
    if (kind == "payment") {
        auto tx = protocol::v3::parse_transaction(*plain);
        if (!tx) co_return reject(req, mchid, "v3", kind, "malformed", 400, tx.err().message, false);
        if (tx->mchid != mchid)
            co_return reject(req, mchid, "v3", kind, "mchid_mismatch", 400, "decrypted mchid differs from the path",
                             false);
        f.occurred_at = tx->payment.success_time;
        f.body = std::move(tx->payment);
    } else {
        auto rf = protocol::v3::parse_refund(*plain);
        if (!rf) co_return reject(req, mchid, "v3", kind, "malformed", 400, rf.err().message, false);
        if (rf->mchid != mchid)
            co_return reject(req, mchid, "v3", kind, "mchid_mismatch", 400, "decrypted mchid differs from the path",
                             false);
        f.occurred_at = rf->refund.success_time;
        f.body = std::move(rf->refund);
    }
    f.payload_json = std::move(*plain);
    std::optional<reply> out = co_await apply(req, f, "v3", kind, false, started);
    co_return std::move(*out);
}

std::variant<reply, notification_intake::v2_document> notification_intake::open_v2(
    const inbound_request& req, const std::string& mchid, std::string_view kind, const config::key_store& keys) {
    const config::merchant_keys* merchant = keys.find(mchid);
    if (merchant == nullptr || !merchant->apiv2_key) {
        finish(req, "v2", "unknown", "rejected", mchid, {}, "reason=unknown_merchant");
        return reply{404, "application/xml", v2_failure("unknown merchant").body};
    }
    if (!is_valid_utf8(req.body)) return reject(req, mchid, "v2", kind, "malformed", 400, "body is not UTF-8", true);
    auto fields = protocol::v2::parse_xml(req.body);
    if (!fields) return reject(req, mchid, "v2", kind, reason_of(fields.err().code), 400, fields.err().message, true);
    return v2_document{merchant, std::move(*fields)};
}

boost::asio::awaitable<reply> notification_intake::handle_v2_payment(const inbound_request& req, std::string mchid) {
    const auto started = steady_clock::now();
    const auto keys = keys_.get();
    auto opened = open_v2(req, mchid, "unknown", *keys);
    if (auto* refused = std::get_if<reply>(&opened)) co_return std::move(*refused);
    v2_document& doc = std::get<v2_document>(opened);
    const config::merchant_keys* merchant = doc.merchant;
    const protocol::v2::fields& fields = doc.fields;
    if (protocol::v2::field(fields, "return_code") != "SUCCESS")
        co_return reject(req, mchid, "v2", "unknown", "malformed", 400, "return_code is not SUCCESS", true);
    if (!protocol::v2::verify(fields, *merchant->apiv2_key))
        co_return reject(req, mchid, "v2", "unknown", "bad_signature", 401, "sign does not verify", true);
    if (protocol::v2::field(fields, "mch_id") != mchid)
        co_return reject(req, mchid, "v2", "payment", "mchid_mismatch", 400, "mch_id differs from the path", true);
    if (protocol::v2::field(fields, "result_code") != "SUCCESS") {
        finish(req, "v2", "payment", "ignored", mchid, protocol::v2::field(fields, "out_trade_no"),
               "result_code=" + protocol::v2::field(fields, "result_code"));
        co_return v2_success();
    }

    auto payment = protocol::v2::read_payment(fields);
    if (!payment || payment->state != domain::trade_state::success)
        co_return reject(req, mchid, "v2", "payment", "malformed", 400,
                         payment ? "trade_state is not SUCCESS" : payment.err().message, true);
    domain::payment_fact p = std::move(*payment);

    domain::fact f = notification_fact(req, mchid, domain::fact_source::notify_v2, "TRANSACTION.SUCCESS", now_());
    f.occurred_at = p.success_time;
    f.payload_json = protocol::v2::to_json(fields);
    f.body = std::move(p);
    std::optional<reply> out = co_await apply(req, f, "v2", "payment", true, started);
    co_return std::move(*out);
}

boost::asio::awaitable<reply> notification_intake::handle_v2_refund(const inbound_request& req, std::string mchid) {
    const auto started = steady_clock::now();
    const auto keys = keys_.get();
    auto opened = open_v2(req, mchid, "refund", *keys);
    if (auto* refused = std::get_if<reply>(&opened)) co_return std::move(*refused);
    v2_document& doc = std::get<v2_document>(opened);
    const config::merchant_keys* merchant = doc.merchant;
    const protocol::v2::fields& outer = doc.fields;
    if (protocol::v2::field(outer, "return_code") != "SUCCESS" || protocol::v2::field(outer, "req_info").empty())
        co_return reject(req, mchid, "v2", "refund", "malformed", 400, "return_code not SUCCESS or req_info missing",
                         true);
    if (protocol::v2::field(outer, "mch_id") != mchid)
        co_return reject(req, mchid, "v2", "refund", "mchid_mismatch", 400, "mch_id differs from the path", true);
    auto inner_xml = protocol::v2::decrypt_req_info(protocol::v2::field(outer, "req_info"), *merchant->apiv2_key);
    if (!inner_xml) co_return reject(req, mchid, "v2", "refund", "decrypt_failed", 400, inner_xml.err().message, true);
    auto inner = protocol::v2::parse_xml(*inner_xml, "root");
    if (!inner) co_return reject(req, mchid, "v2", "refund", "malformed", 400, inner.err().message, true);

    domain::refund_fact r;
    r.out_trade_no = protocol::v2::field(*inner, "out_trade_no");
    r.out_refund_no = protocol::v2::field(*inner, "out_refund_no");
    r.refund_id = protocol::v2::field(*inner, "refund_id");
    r.transaction_id = protocol::v2::field(*inner, "transaction_id");
    r.require_paid_order_match = true;
    const std::string status = protocol::v2::field(*inner, "refund_status");
    std::string event_type;
    if (status == "SUCCESS") r.status = domain::refund_status::success, event_type = "REFUND.SUCCESS";
    else if (status == "CHANGE") r.status = domain::refund_status::abnormal, event_type = "REFUND.ABNORMAL";
    else if (status == "REFUNDCLOSE") r.status = domain::refund_status::closed, event_type = "REFUND.CLOSED";
    const auto refund_fee = protocol::v2::parse_fen(protocol::v2::field(*inner, "refund_fee"));
    r.amount_total = protocol::v2::parse_fen(protocol::v2::field(*inner, "total_fee"));
    if (r.out_trade_no.empty() || r.out_refund_no.empty() || r.transaction_id.empty() || event_type.empty() ||
        !refund_fee || !r.amount_total)
        co_return reject(req, mchid, "v2", "refund", "malformed", 400,
                         "req_info lacks out_trade_no, out_refund_no, transaction_id, refund_status or amounts", true);
    r.amount_refund = *refund_fee;
    if (const std::string t = protocol::v2::field(*inner, "success_time"); !t.empty()) {
        auto parsed = protocol::v2::parse_beijing_time(t);
        if (!parsed) co_return reject(req, mchid, "v2", "refund", "malformed", 400, parsed.err().message, true);
        r.success_time = *parsed * 1'000'000;
    }

    domain::fact f = notification_fact(req, mchid, domain::fact_source::notify_v2, event_type, now_());
    f.occurred_at = r.success_time;
    f.payload_json = protocol::v2::to_json(*inner);
    f.body = std::move(r);

    std::optional<reply> out = co_await apply(req, f, "v2", "refund", true, started);
    if (!out)
        co_return reject(req, mchid, "v2", "refund", "refund_unmatched", 400,
                         "refund matches no paid order on record", true);
    co_return std::move(*out);
}

}  // namespace wxrecon::workflow
