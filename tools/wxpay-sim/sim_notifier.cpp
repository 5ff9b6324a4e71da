// The notifier: plans each payment and refund notification (with the faults
// drawn for it: delay, reorder, drop, duplicate, concurrent copy, forgery,
// probe), then delivers every copy within delivery_concurrency slots and
// re-sends unacknowledged ones on WeChat's retry schedule.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "protocol/v3.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;
namespace v2 = protocol::v2;

// ---------------------------------------------------------------- planning

std::string simulator::pick_serial(merchant_state& m, std::string_view decision_key) {
    const sim_merchant& k = *m.keys;
    const bool public_key =
        k.mode == key_mode::public_key ||
        (k.mode == key_mode::mixed && seeded_draw(options_.seed, "key_mode", decision_key) < 0.5);
    return public_key ? k.public_key_id : k.certificates.back().serial;
}

void simulator::rotate_certificate(merchant_state& m) {
    auto fresh = make_platform_certificate(keys_, now());
    if (!fresh) {
        spdlog::error("sim: certificate rotation failed mchid={} error=\"{}\"", m.keys->mchid,
                      fresh.err().message);
        return;
    }
    spdlog::info("sim: platform certificate rotated mchid={} old={} new={}", m.keys->mchid,
                 m.keys->certificates.back().serial, fresh->serial);
    m.keys->certificates.push_back(std::move(*fresh));
}

void simulator::notify_payment(merchant_state& m, const order_record& o) {
    delivery d;
    d.mchid = o.mchid;
    d.out_trade_no = o.out_trade_no;
    d.event_type = "TRANSACTION.SUCCESS";
    d.url = o.notify_url;
    d.version = o.version;
    if (o.version == api_version::v3) {
        d.plaintext = transaction_object(o, m.variants);
    } else {
        d.v2_fields = v2_order_fields(o, "");
        d.v2_fields.erase("trade_state");
        d.v2_fields.erase("trade_state_desc");
        d.v2_fields.erase("return_msg");
        d.v2_fields["sign_type"] = o.v2_sign == v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
    }
    plan(m, std::move(d));
}

void simulator::notify_refund(merchant_state& m, const order_record& o, const refund_record& r) {
    delivery d;
    d.mchid = o.mchid;
    d.out_trade_no = o.out_trade_no;
    d.out_refund_no = r.out_refund_no;
    d.refund = true;
    d.refund_status = std::string(domain::to_string(r.status));
    d.event_type = "REFUND." + d.refund_status;
    d.url = r.notify_url.empty() ? o.notify_url : r.notify_url;
    d.version = o.version;
    if (o.version == api_version::v3)
        d.plaintext = refund_notification_object(o, r);
    else
        d.v2_fields = v2_refund_inner_fields(o, r);
    plan(m, std::move(d));
}

void simulator::plan(merchant_state& m, delivery base) {
    const std::string subject =
        base.mchid + "/" + base.out_trade_no + "/" + base.out_refund_no + "/" + base.event_type;
    base.notification_id = uuid_from(seeded_hash(options_.seed, "notification", subject),
                                     seeded_hash(options_.seed, "notification2", subject));
    base.serial = base.version == api_version::v3 ? pick_serial(m, base.notification_id) : "";
    const fault_config& f = m.faults;
    if (f.rotate_certificate_after > 0 &&
        ++m.notifications % static_cast<std::uint64_t>(f.rotate_certificate_after) == 0)
        rotate_certificate(m);

    auto add = [&](std::string kind, std::int64_t delay_ms) -> delivery* {
        delivery d = base;
        d.kind = std::move(kind);
        d.first_delay_ms = delay_ms;
        return &add_delivery(std::move(d));
    };
    std::int64_t delay = 0;
    if (draw("fault.delay", subject, 0, f.delay))
        delay += static_cast<std::int64_t>(seeded_draw(options_.seed, "fault.delay_ms", subject) *
                                           static_cast<double>(f.delay_ms));
    if (f.reorder)
        delay += static_cast<std::int64_t>(seeded_draw(options_.seed, "fault.reorder_ms", subject) *
                                           static_cast<double>(f.reorder_window_ms));
    if (base.version == api_version::v3 && draw("fault.probe", subject, 0, f.probe)) {
        const delivery* p = add("probe", 0);
        schedule(p->id, std::chrono::milliseconds(0));
    }
    const bool lost = draw("fault.drop", subject, 0, f.drop);
    if (lost) {
        // Lost entirely: no copy of it goes out either (a forger, below, does not depend on WeChat).
        delivery* d = add("genuine", delay);
        d->dropped = true;
        d->finished = true;
    } else {
        const delivery* d = add("genuine", delay);
        schedule(d->id, scaled(delay));
    }
    if (!lost && draw("fault.duplicate", subject, 0, f.duplicate)) {
        const std::int64_t extra =
            50 + static_cast<std::int64_t>(seeded_draw(options_.seed, "fault.duplicate_ms", subject) * 950);
        const delivery* d = add("duplicate", delay + extra);
        schedule(d->id, scaled(delay + extra));
    }
    if (!lost && draw("fault.concurrent", subject, 0, f.concurrent)) {
        const delivery* d = add("concurrent", delay);
        schedule(d->id, scaled(delay));
    }
    if (draw("fault.forged", subject, 0, f.forged)) {
        const delivery* d = add("forged", delay);
        schedule(d->id, scaled(delay));
    }
}

delivery& simulator::add_delivery(delivery d) {
    while (!deliveries_.empty() && deliveries_.size() >= options_.max_deliveries &&
           deliveries_.front().finished) {
        deliveries_.pop_front();
        ++first_delivery_id_;
    }
    d.id = next_delivery_id_++;
    deliveries_.push_back(std::move(d));
    return deliveries_.back();
}

delivery* simulator::find_delivery(std::uint64_t id) {
    if (id < first_delivery_id_ || id >= next_delivery_id_) return nullptr;
    return &deliveries_[id - first_delivery_id_];
}

// ---------------------------------------------------------------- delivering

void simulator::schedule(std::uint64_t id, std::chrono::milliseconds after) {
    asio::co_spawn(io_, run_attempt(id, after), asio::detached);
}

void simulator::release_slot() {
    if (slot_waiters_.empty() || stopping_) {
        --in_flight_;
        return;
    }
    asio::steady_timer* next = slot_waiters_.front();
    slot_waiters_.pop_front();
    next->cancel();  // the slot passes to the oldest waiter; in_flight_ stays
}

asio::awaitable<void> simulator::run_attempt(std::uint64_t id, std::chrono::milliseconds after) {
    if (after.count() > 0) {
        asio::steady_timer wait(io_, after);
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // A slot among delivery_concurrency: taken at once, or handed over by a finishing attempt (FIFO).
    if (in_flight_ < options_.delivery_concurrency) {
        ++in_flight_;
    } else {
        asio::steady_timer turn(io_, asio::steady_timer::time_point::max());
        slot_waiters_.push_back(&turn);
        co_await turn.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    delivery* d = find_delivery(id);
    merchant_state* m = d == nullptr ? nullptr : merchant(d->mchid);
    if (stopping_ || m == nullptr || d->finished) {
        release_slot();
        co_return;
    }
    std::optional<net::outbound_request> request;
    if (d->version == api_version::v3) {
        request = co_await v3_notification_request(*m, *d);
    } else {
        request = v2_notification_request(*m, *d);
    }
    if (!request) {  // signing failed: nothing was sent, so there is nothing to record
        release_slot();
        co_return;
    }
    request->method = "POST";
    request->url = d->url;
    const std::int64_t sent_at = elapsed_ms();
    const net::exchange ex = co_await client_->send(std::move(*request));
    release_slot();
    record_attempt(id, sent_at, ex);
}

asio::awaitable<std::optional<net::outbound_request>> simulator::v3_notification_request(
    const merchant_state& m, const delivery& d) {
    // d stays in place while signing runs: add_delivery drops only finished deliveries.
    const sim_merchant& k = *m.keys;
    const std::string kind = d.kind;
    protocol::v3::notification_spec spec;
    spec.id = d.notification_id;
    spec.create_time = format_rfc3339(now());
    spec.event_type = d.event_type;
    spec.summary = d.refund ? "退款状态变更" : "支付成功";
    spec.original_type = d.refund ? "refund" : "transaction";
    spec.associated_data = d.refund ? "refund" : "transaction";
    spec.plaintext = d.plaintext;
    const std::string serial = d.serial;
    if (kind == "forged" && !forger_key_) {
        // Made at the first forgery: most runs never forge, and a key costs a search for primes.
        auto forger = crypto::generate_rsa_key();
        if (!forger) co_return std::nullopt;
        forger_key_ = *forger;
    }
    crypto::private_key key = kind == "forged"                    ? forger_key_
                              : serial.starts_with("PUB_KEY_ID_") ? k.public_key_signer
                                                                  : k.certificates.back().key;
    for (const auto& c : k.certificates)
        if (c.serial == serial && kind != "forged") key = c.key;
    const std::string apiv3_key = k.apiv3_key;
    const std::int64_t at = now();
    auto job = [spec, apiv3_key, key, serial, at] {
        return protocol::v3::make_notification(spec, apiv3_key, key, serial, at);
    };
    auto made = co_await on_pool(signers_, std::move(job));
    if (!made || !*made) co_return std::nullopt;
    protocol::v3::signed_notification n = std::move(**made);
    if (kind == "probe")
        n.signature = std::string(protocol::v3::probe_prefix) + base64_encode(crypto::random_bytes(240));
    net::outbound_request request;
    request.body = std::move(n.body);
    request.headers = {{"Content-Type", "application/json"},
                       {"Wechatpay-Timestamp", n.timestamp},
                       {"Wechatpay-Nonce", n.nonce},
                       {"Wechatpay-Signature", n.signature},
                       {"Wechatpay-Serial", n.serial},
                       {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"},
                       {"Request-ID", uuid_from(seeded_hash(options_.seed, "notify-request",
                                                            d.notification_id, d.attempts.size()),
                                                d.id)}};
    co_return request;
}

net::outbound_request simulator::v2_notification_request(const merchant_state& m, const delivery& d) {
    const sim_merchant& k = *m.keys;
    // A forged copy is signed (or encrypted) with a key the merchant does not have.
    const std::string api_key = d.kind == "forged" ? crypto::random_alnum(32) : k.apiv2_key;
    net::outbound_request request;
    if (d.refund) {
        v2::fields outer{{"return_code", "SUCCESS"},
                         {"appid", k.appid},
                         {"mch_id", k.mchid},
                         {"nonce_str", crypto::random_alnum(32)},
                         {"req_info", v2::encrypt_req_info(v2_inner_xml(d.v2_fields), api_key)}};
        request.body = v2::to_xml(outer);
    } else {
        v2::fields f = d.v2_fields;
        f["nonce_str"] = crypto::random_alnum(32);
        const v2::sign_type type =
            f["sign_type"] == "HMAC-SHA256" ? v2::sign_type::hmac_sha256 : v2::sign_type::md5;
        v2_sign(f, api_key, type, !m.variants.v2_notify_without_sign_type);
        request.body = v2::to_xml(f);
    }
    request.headers = {{"Content-Type", "text/xml"}};
    return request;
}

void simulator::record_attempt(std::uint64_t id, std::int64_t sent_at, const net::exchange& ex) {
    delivery* d = find_delivery(id);
    if (d == nullptr) return;
    delivery_attempt a;
    a.number = static_cast<int>(d->attempts.size()) + 1;
    a.at_ms = sent_at;
    bool acked = false;
    if (ex.response) {
        a.status = ex.response->status;
        if (d->version == api_version::v3) {
            acked = a.status == 200 || a.status == 204;
        } else if (a.status == 200) {
            const auto answer = v2::parse_xml(ex.response->body);
            acked = answer && answer->count("return_code") && answer->at("return_code") == "SUCCESS";
        }
        a.outcome = acked ? "acknowledged" : "refused";
    } else {
        a.outcome = ex.error;
    }
    d->attempts.push_back(a);
    const bool retried = d->kind == "genuine" || d->kind == "duplicate" || d->kind == "concurrent";
    if (acked) {
        d->acknowledged = true;
    } else if (retried && d->attempts.size() <= std::size(retry_schedule_seconds) && !stopping_) {
        schedule(id, scaled(retry_schedule_seconds[d->attempts.size() - 1] * 1000));
        return;
    }
    // Done: the log keeps what happened, not the payload.
    d->finished = true;
    std::string().swap(d->plaintext);
    d->v2_fields.clear();
}

}  // namespace wxrecon::sim
