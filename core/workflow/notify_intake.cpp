#include "workflow/notify_intake.hpp"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <charconv>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::workflow {
namespace {

using namespace std::chrono;

notify_kind v3_kind(std::string_view event_type) {
    if (event_type.starts_with("TRANSACTION.")) return notify_kind::payment;
    if (event_type.starts_with("REFUND.")) return notify_kind::refund;
    return notify_kind::unknown;
}

// What a payment notification must say of itself (TRANSACTION.SUCCESS is the only payment event handled).
std::optional<std::string> payment_contradiction(const protocol::v3::decrypted_payment& tx) {
    if (tx.payment.state != domain::trade_state::success)
        return "TRANSACTION.SUCCESS with trade_state " + std::string(domain::to_string(tx.payment.state));
    if (!tx.payment.amount_total) return "a payment without amount.total";
    return std::nullopt;
}

// A refund notification's event type names the status its resource carries.
std::optional<std::string> refund_contradiction(std::string_view event_type,
                                                const protocol::v3::decrypted_refund& rf) {
    const std::string status(domain::to_string(rf.refund.status));
    if (event_type != "REFUND." + status) return std::string(event_type) + " with refund_status " + status;
    return std::nullopt;
}

bool handled_v3_event(std::string_view event_type) {
    return event_type == "TRANSACTION.SUCCESS" || event_type == "REFUND.SUCCESS" ||
           event_type == "REFUND.ABNORMAL" || event_type == "REFUND.CLOSED";
}

// What every notification fact carries: where it came from and the evidence as received.
domain::fact notification_fact(const inbound_request& req, const std::string& mchid,
                               domain::fact_source source, std::string event_type, std::int64_t now_us) {
    domain::fact f;
    f.mchid = mchid;
    f.source = source;
    f.event_type = std::move(event_type);
    f.observed_at = now_us;
    f.raw_body = req.body;
    f.raw_headers_json = req.evidence_headers_json();
    return f;
}

}  // namespace

notification_intake::notification_intake(key_holder& keys, store::ledger& ledger,
                                         store::rejected_log& rejected, std::shared_ptr<metrics> m,
                                         wall_clock clock)
    : keys_(keys), ledger_(ledger), rejected_(rejected), metrics_(std::move(m)), clock_(std::move(clock)) {}

reply notification_intake::v3_failure(int status, std::string_view message) {
    return reply{status, "application/json", json_object().add("code", "FAIL").add("message", message).str()};
}

reply notification_intake::v2_failure(std::string_view message) {
    protocol::v2::fields f{{"return_code", "FAIL"}, {"return_msg", std::string(message)}};
    return reply{200, "application/xml", protocol::v2::to_xml(f)};
}

reply notification_intake::v2_success() {
    return reply{
        200, "application/xml",
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"};
}

void notification_intake::count(const notice& n, notify_result result) {
    metrics_->add("wxrecon_notifications_total", {{"api", std::string(to_string(n.api))},
                                                  {"kind", std::string(to_string(n.kind))},
                                                  {"result", std::string(to_string(result))}});
    if (result == notify_result::accepted)
        metrics_->set("wxrecon_last_accepted_notification_timestamp_seconds",
                      static_cast<double>(clock_.seconds()));
}

void notification_intake::finish(const inbound_request& req, const notice& n, notify_result result,
                                 std::string_view out_trade_no, std::string_view detail) {
    finish_with(req, n, result, out_trade_no, [detail] { return detail; });
}

template <class Detail>
void notification_intake::finish_with(const inbound_request& req, const notice& n, notify_result result,
                                      std::string_view out_trade_no, Detail&& detail) {
    count(n, result);
    const auto now = steady_clock::now();
    const bool logged = result != notify_result::rejected || rejected_lines_.take(now);
    if (!logged) ++unlogged_rejections_;
    if (!logged && !on_finished) return;
    const auto text = detail();
    if (logged) {
        std::string unlogged;
        if (result == notify_result::rejected && unlogged_rejections_ > 0) {
            unlogged = fmt::format(" unlogged_rejections={}", unlogged_rejections_);
            unlogged_rejections_ = 0;
        }
        const double ms = req.received == steady_clock::time_point{}
                              ? 0.0
                              : duration<double, std::milli>(now - req.received).count();
        spdlog::log(result == notify_result::error ? spdlog::level::warn : spdlog::level::info,
                    "notify: result={} api={} kind={} mchid={} out_trade_no={} request_id={} ms={:.1f}{}{}{}",
                    to_string(result), to_string(n.api), to_string(n.kind), n.mchid,
                    out_trade_no.empty() ? "-" : out_trade_no, req.request_id, ms,
                    std::string_view(text).empty() ? "" : " ", text, unlogged);
    }
    if (on_finished) on_finished(result, text);
}

reply notification_intake::too_large(std::string_view target) {
    const bool v2 = target.starts_with("/wxpay/v2/");
    inbound_request req;  // only the target is known: no headers, so no Request-ID, and no timing
    req.path = std::string(target);
    req.request_id = "-";
    const notice n{v2 ? notify_api::v2 : notify_api::v3, notify_kind::unknown, "-"};
    finish(
        req, n, notify_result::rejected, {},
        fmt::format("reason={} path={}", to_string(reject_reason::body_too_large), log_quote(target, 120)));
    if (v2) return reply{413, "application/xml", v2_failure("body too large").body};
    return v3_failure(413, "body too large");
}

reply notification_intake::reject(const inbound_request& req, const notice& n, reject_reason reason,
                                  std::string message) {
    // Under a flood most refusals are neither logged nor kept: nothing is formatted or copied for them.
    finish_with(req, n, notify_result::rejected, {}, [&] {
        return fmt::format("reason={} remote={} detail={}", to_string(reason), req.remote_addr,
                           log_quote(message));
    });
    rejected_.record(to_string(reason), [&] {
        return store::rejected_entry{req.path,        std::string(n.mchid), std::string(to_string(reason)),
                                     req.remote_addr, req.headers_json(),   req.body};
    });
    return n.api == notify_api::v2 ? v2_failure(message) : v3_failure(v3_status_of(reason), message);
}

boost::asio::awaitable<std::optional<reply>> notification_intake::apply(const inbound_request& req,
                                                                        const domain::fact& f,
                                                                        const notice& n,
                                                                        steady_clock::time_point started) {
    const bool v2 = n.api == notify_api::v2;
    const std::string out_trade_no = f.out_trade_no();
    // Signed by WeChat Pay, yet not a number WeChat Pay issues: refused for good rather than retried for a
    // day against the orders table's constraint.
    if (!domain::valid_out_trade_no(out_trade_no))
        co_return reject(req, n, reject_reason::malformed,
                         "out_trade_no is not " + std::string(domain::out_trade_no_rule));
    std::string failure;
    try {
        const auto until = started + notification_deadline;
        const auto r = co_await ledger_.apply(f, until);
        auto result = notify_result::duplicate;
        if (r.outcome == domain::outcome::applied || r.outcome == domain::outcome::regression)
            result = notify_result::accepted;
        if (r.outcome == domain::outcome::unmatched) co_return std::nullopt;
        std::string opened;
        for (const auto k : r.opened) (opened += opened.empty() ? "" : ",") += domain::to_string(k);
        finish(
            req, n, result, out_trade_no,
            fmt::format("notify_id={} opened={}", f.notify_id.value_or("-"), opened.empty() ? "-" : opened));
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
    finish(req, n, notify_result::error, out_trade_no, "error=" + log_quote(failure));
    // WeChat Pay retries on any non-success: nothing was acknowledged, nothing is lost.
    co_return v2 ? reply{503, "application/xml", v2_failure("temporarily unavailable").body}
                 : v3_failure(503, "temporarily unavailable, retry later");
}

boost::asio::awaitable<reply> notification_intake::handle_v3(const inbound_request& req, std::string mchid) {
    const auto started = steady_clock::now();
    notice n{notify_api::v3, notify_kind::unknown, mchid};
    const auto keys = keys_.get();
    const config::merchant_keys* merchant = keys->find(mchid);
    if (merchant == nullptr) {
        finish(req, n, notify_result::rejected, {}, "reason=unknown_merchant");
        co_return v3_failure(v3_status_of(reject_reason::unknown_merchant), "unknown merchant");
    }

    // Verify before anything in the body is trusted. A signed header sent twice is refused: the stored
    // evidence keeps every copy, and must mean exactly what was verified.
    for (const std::string_view name :
         {"Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"})
        if (req.header_count(name) > 1)
            co_return reject(req, n, reject_reason::bad_signature,
                             std::string(name) + " header sent more than once");
    const std::string_view signature = req.header("Wechatpay-Signature");
    if (protocol::v3::is_probe(signature)) {
        metrics_->add("wxrecon_signature_probes_total");
        co_return reject(req, n, reject_reason::probe, "signature probe refused");
    }
    const protocol::v3::signature_headers sig{req.header("Wechatpay-Timestamp"),
                                              req.header("Wechatpay-Nonce"), signature,
                                              req.header("Wechatpay-Serial")};
    const auto now_us = clock_.micros();
    if (auto ok = protocol::v3::verify_signature(
            sig, req.body, now_us / 1'000'000,
            [merchant](std::string_view s, std::int64_t at) { return merchant->find_wechatpay_key(s, at); });
        !ok) {
        // A platform certificate wxrecon has not downloaded yet (a rotation): refused now, WeChat Pay
        // retries, and the refresh this starts lets the retry verify.
        std::string why = ok.err().message;
        if (ok.err().code == errc::unknown_serial) {
            if (on_unknown_serial && !sig.serial.starts_with("PUB_KEY_ID_")) on_unknown_serial(mchid);
            if (const auto* cert = merchant->find_platform_certificate(sig.serial))
                why = "platform certificate " + cert->serial + " is valid only from " +
                      format_rfc3339(cert->not_before) + " to " + format_rfc3339(cert->not_after);
        }
        co_return reject(req, n, reason_of(ok.err().code), why);
    }

    auto env = protocol::v3::parse_envelope(req.body);
    if (!env) co_return reject(req, n, reject_reason::malformed, env.err().message);
    n.kind = v3_kind(env->event_type);
    if (!handled_v3_event(env->event_type)) {
        finish(req, n, notify_result::ignored, {}, "event_type=" + env->event_type);
        co_return reply{204, "", ""};
    }
    if (!merchant->apiv3_key) {
        finish(req, n, notify_result::error, {}, "error=\"no apiv3 key configured\"");
        co_return v3_failure(503, "merchant has no APIv3 key configured");
    }
    auto plain = protocol::v3::decrypt_resource(env->res, *merchant->apiv3_key);
    if (!plain) co_return reject(req, n, reject_reason::decrypt_failed, plain.err().message);

    domain::fact f = notification_fact(req, mchid, domain::fact_source::notify_v3, env->event_type, now_us);
    f.notify_id = env->id;
    if (n.kind == notify_kind::payment) {
        auto tx = protocol::v3::parse_transaction(*plain);
        if (!tx) co_return reject(req, n, reject_reason::malformed, tx.err().message);
        if (tx->mchid != mchid)
            co_return reject(req, n, reject_reason::mchid_mismatch, "decrypted mchid differs from the path");
        // Signed by WeChat Pay and still contradicting itself: refused (400), never applied.
        if (auto bad = payment_contradiction(*tx))
            co_return reject(req, n, reject_reason::malformed, std::move(*bad));
        f.occurred_at = tx->payment.success_time;
        f.body = std::move(tx->payment);
    } else {
        auto rf = protocol::v3::parse_refund(*plain);
        if (!rf) co_return reject(req, n, reject_reason::malformed, rf.err().message);
        if (rf->mchid != mchid)
            co_return reject(req, n, reject_reason::mchid_mismatch, "decrypted mchid differs from the path");
        if (auto bad = refund_contradiction(env->event_type, *rf))
            co_return reject(req, n, reject_reason::malformed, std::move(*bad));
        f.occurred_at = rf->refund.success_time;
        f.body = std::move(rf->refund);
    }
    f.payload_json = std::move(*plain);
    std::optional<reply> out = co_await apply(req, f, n, started);
    co_return std::move(*out);
}

std::variant<reply, notification_intake::v2_document> notification_intake::open_v2(
    const inbound_request& req, const std::string& mchid, notify_kind kind, const config::key_store& keys) {
    const notice n{notify_api::v2, kind, mchid};
    const config::merchant_keys* merchant = keys.find(mchid);
    if (merchant == nullptr || !merchant->apiv2_key) {
        finish(req, notice{notify_api::v2, notify_kind::unknown, mchid}, notify_result::rejected, {},
               "reason=unknown_merchant");
        return reply{404, "application/xml", v2_failure("unknown merchant").body};
    }
    // Filed as what it is, whatever server.max_body_bytes lets through to here.
    if (req.body.size() > protocol::v2::max_xml_bytes)
        return reject(req, n, reject_reason::body_too_large,
                      "XML body of " + std::to_string(req.body.size()) +
                          " bytes exceeds the APIv2 limit of " + std::to_string(protocol::v2::max_xml_bytes));
    if (!is_valid_utf8(req.body)) return reject(req, n, reject_reason::malformed, "body is not UTF-8");
    auto fields = protocol::v2::parse_xml(req.body);
    if (!fields) return reject(req, n, reason_of(fields.err().code), fields.err().message);
    return v2_document{merchant, std::move(*fields)};
}

boost::asio::awaitable<reply> notification_intake::handle_v2_payment(const inbound_request& req,
                                                                     std::string mchid) {
    const auto started = steady_clock::now();
    notice n{notify_api::v2, notify_kind::unknown, mchid};
    const auto keys = keys_.get();
    auto opened = open_v2(req, mchid, n.kind, *keys);
    if (auto* refused = std::get_if<reply>(&opened)) co_return std::move(*refused);
    v2_document& doc = std::get<v2_document>(opened);
    const protocol::v2::fields& fields = doc.fields;
    if (protocol::v2::field(fields, "return_code") != "SUCCESS")
        co_return reject(req, n, reject_reason::malformed, "return_code is not SUCCESS");
    if (!protocol::v2::verify(fields, *doc.merchant->apiv2_key))
        co_return reject(req, n, reject_reason::bad_signature, "sign does not verify");
    n.kind = notify_kind::payment;
    if (protocol::v2::field(fields, "mch_id") != mchid)
        co_return reject(req, n, reject_reason::mchid_mismatch, "mch_id differs from the path");
    if (protocol::v2::field(fields, "result_code") != "SUCCESS") {
        finish(req, n, notify_result::ignored, protocol::v2::field(fields, "out_trade_no"),
               "result_code=" + protocol::v2::field(fields, "result_code"));
        co_return v2_success();
    }

    auto payment = protocol::v2::read_payment(fields);
    if (!payment || payment->state != domain::trade_state::success)
        co_return reject(req, n, reject_reason::malformed,
                         payment ? "trade_state is not SUCCESS" : payment.err().message);
    domain::payment_fact p = std::move(*payment);

    domain::fact f =
        notification_fact(req, mchid, domain::fact_source::notify_v2, "TRANSACTION.SUCCESS", clock_.micros());
    f.occurred_at = p.success_time;
    f.payload_json = protocol::v2::to_json(fields);
    f.body = std::move(p);
    std::optional<reply> out = co_await apply(req, f, n, started);
    co_return std::move(*out);
}

namespace {

// An APIv2 refund notification's decrypted req_info as a refund fact and its event type; nullopt when a
// required field is missing or unreadable.
struct v2_refund {
    domain::refund_fact refund;
    std::string event_type;
};

result<v2_refund> read_v2_refund(const protocol::v2::fields& inner) {
    v2_refund out;
    domain::refund_fact& r = out.refund;
    r.out_trade_no = protocol::v2::field(inner, "out_trade_no");
    r.out_refund_no = protocol::v2::field(inner, "out_refund_no");
    r.refund_id = protocol::v2::field(inner, "refund_id");
    r.transaction_id = protocol::v2::field(inner, "transaction_id");
    r.require_paid_order_match = true;
    const std::string status = protocol::v2::field(inner, "refund_status");
    if (status == "SUCCESS")
        r.status = domain::refund_status::success, out.event_type = "REFUND.SUCCESS";
    else if (status == "CHANGE")
        r.status = domain::refund_status::abnormal, out.event_type = "REFUND.ABNORMAL";
    else if (status == "REFUNDCLOSE")
        r.status = domain::refund_status::closed, out.event_type = "REFUND.CLOSED";
    const auto refund_fee = protocol::v2::parse_fen(protocol::v2::field(inner, "refund_fee"));
    r.amount_total = protocol::v2::parse_fen(protocol::v2::field(inner, "total_fee"));
    if (r.out_trade_no.empty() || r.out_refund_no.empty() || r.transaction_id.empty() ||
        out.event_type.empty() || !refund_fee || !r.amount_total)
        return make_error(
            errc::parse_error,
            "req_info lacks out_trade_no, out_refund_no, transaction_id, refund_status or amounts");
    r.amount_refund = *refund_fee;
    if (const std::string t = protocol::v2::field(inner, "success_time"); !t.empty()) {
        auto parsed = protocol::v2::parse_beijing_time(t);
        if (!parsed) return parsed.err();
        r.success_time = *parsed * 1'000'000;
    }
    return out;
}

}  // namespace

boost::asio::awaitable<reply> notification_intake::handle_v2_refund(const inbound_request& req,
                                                                    std::string mchid) {
    const auto started = steady_clock::now();
    const notice n{notify_api::v2, notify_kind::refund, mchid};
    const auto keys = keys_.get();
    auto opened = open_v2(req, mchid, n.kind, *keys);
    if (auto* refused = std::get_if<reply>(&opened)) co_return std::move(*refused);
    v2_document& doc = std::get<v2_document>(opened);
    const protocol::v2::fields& outer = doc.fields;
    if (protocol::v2::field(outer, "return_code") != "SUCCESS" ||
        protocol::v2::field(outer, "req_info").empty())
        co_return reject(req, n, reject_reason::malformed, "return_code not SUCCESS or req_info missing");
    if (protocol::v2::field(outer, "mch_id") != mchid)
        co_return reject(req, n, reject_reason::mchid_mismatch, "mch_id differs from the path");
    auto inner_xml =
        protocol::v2::decrypt_req_info(protocol::v2::field(outer, "req_info"), *doc.merchant->apiv2_key);
    if (!inner_xml) co_return reject(req, n, reject_reason::decrypt_failed, inner_xml.err().message);
    auto inner = protocol::v2::parse_xml(*inner_xml, "root");
    if (!inner) co_return reject(req, n, reject_reason::malformed, inner.err().message);
    auto refund = read_v2_refund(*inner);
    if (!refund) co_return reject(req, n, reject_reason::malformed, refund.err().message);

    domain::fact f =
        notification_fact(req, mchid, domain::fact_source::notify_v2, refund->event_type, clock_.micros());
    f.occurred_at = refund->refund.success_time;
    f.payload_json = protocol::v2::to_json(*inner);
    f.body = std::move(refund->refund);

    std::optional<reply> out = co_await apply(req, f, n, started);
    if (!out)
        co_return reject(req, n, reject_reason::refund_unmatched, "refund matches no paid order on record");
    co_return std::move(*out);
}

}  // namespace wxrecon::workflow
