// The /sim control API, how tests and humans play the payer and the operator:
// reads (ledger, deliveries, stats, call log, merchants) and writes (create,
// pay, expire and refund orders, set faults, rotate certificates). The login
// code issuer, /sim/login-code, lives with the login in sim_login.cpp; the
// refund plans in sim_refunds.cpp; the app-event receiver in sim_app_events.cpp.
#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;

namespace {

// An optional RFC 3339 field: nullopt when absent, an error when it does not parse.
result<std::optional<std::int64_t>> optional_time(const json_body& j, std::string_view key) {
    const auto text = j.str(key);
    if (!text) return std::optional<std::int64_t>();
    const auto t = parse_rfc3339(*text);
    if (!t) return make_error(errc::invalid_argument, std::string(key) + ": " + t.err().message);
    return std::optional<std::int64_t>(*t);
}

bool is_success_refund(std::string_view s) {
    return s == "SUCCESS" || s == "ABNORMAL" || s == "CLOSED";
}

// One line of /sim/deliveries: the plan of a notification copy and its attempts so far.
std::string delivery_json(const delivery& d) {
    std::string attempts = "[";
    for (std::size_t i = 0; i < d.attempts.size(); ++i) {
        const auto& a = d.attempts[i];
        attempts += (i ? "," : "") + json_object()
                                         .add("n", a.number)
                                         .add("at_ms", a.at_ms)
                                         .add("status", a.status)
                                         .add("outcome", a.outcome)
                                         .str();
    }
    json_object j;
    j.add("id", static_cast<std::int64_t>(d.id))
        .add("mchid", d.mchid)
        .add("out_trade_no", d.out_trade_no)
        .add("out_refund_no", d.out_refund_no)
        .add("event_type", d.event_type)
        .add("notification_id", d.notification_id)
        .add("kind", d.kind)
        .add("api_version", d.version == api_version::v3 ? "v3" : "v2")
        .add("serial", d.serial)
        .add("dropped", d.dropped)
        .add("first_delay_ms", d.first_delay_ms)
        .add("acknowledged", d.acknowledged)
        .add("finished", d.finished)
        .add_raw("attempts", attempts + "]");
    return j.str();
}

}  // namespace

asio::awaitable<reply> simulator::handle_control(inbound_request& req) {
    // Reads change nothing (GET); writes take a JSON body (POST).
    struct read_route {
        std::string_view path;
        reply (simulator::*handler)(const inbound_request&) const;
    };
    struct write_route {
        std::string_view path;
        reply (simulator::*handler)(std::string_view body);
    };
    static constexpr read_route reads[] = {
        {"/sim/ledger", &simulator::control_ledger},
        {"/sim/deliveries", &simulator::control_deliveries},
        {"/sim/stats", &simulator::control_stats},
        {"/sim/calls", &simulator::control_calls},
        {"/sim/merchants", &simulator::control_merchants},
        {"/sim/app-events", &simulator::control_app_events},
    };
    static constexpr write_route writes[] = {
        {"/sim/orders", &simulator::control_create_order},
        {"/sim/pay", &simulator::control_pay},
        {"/sim/expire", &simulator::control_expire},
        {"/sim/refund", &simulator::control_refund},
        {"/sim/faults", &simulator::control_faults},
        {"/sim/rotate-certificate", &simulator::control_rotate},
        {"/sim/login-code", &simulator::control_login_code},
        {"/sim/hand-payment", &simulator::control_hand_payment},
        {"/sim/fee-rate", &simulator::control_fee_rate},
        {"/sim/bill-style", &simulator::control_bill_style},
        {"/sim/bill-creating", &simulator::control_bill_creating},
        {"/sim/bill-corrupt", &simulator::control_bill_corrupt},
        {"/sim/fee-adjustment", &simulator::control_fee_adjustment},
        {"/sim/refund-plan", &simulator::control_refund_plan},
        {"/sim/app-events-config", &simulator::control_app_events_config},
    };
    if (req.method == "GET") {
        for (const auto& r : reads)
            if (req.path == r.path) co_return (this->*r.handler)(req);
        co_return control_error(404, "no such control endpoint");
    }
    if (req.method != "POST") co_return control_error(405, "control endpoints take GET or POST");
    // The app-event receiver plays the application: it takes wxrecond's POSTs, headers and all.
    if (req.path == "/sim/app-events") co_return receive_app_event(req);
    for (const auto& w : writes)
        if (req.path == w.path) co_return (this->*w.handler)(req.body);
    co_return control_error(404, "no such control endpoint");
}

// ---------------------------------------------------------------- reads

reply simulator::control_ledger(const inbound_request&) const {
    return json_reply(200, model_.ledger_json());
}

reply simulator::control_merchants(const inbound_request&) const {
    std::string list = "[";
    bool first = true;
    for (const auto& [id, m] : merchants_) {
        json_object j;
        j.add("mchid", id)
            .add("appid", m.keys->appid)
            .add("api_version", m.keys->version == api_version::v3 ? "v3" : "v2")
            .add("key_mode", to_string(m.keys->mode))
            .add("public_key_id", m.keys->public_key_id)
            .add("platform_serial", m.keys->certificates.back().serial)
            .add_raw("faults", m.faults.to_json())
            .add_raw("variants", m.variants.to_json());
        list += (first ? "" : ",") + j.str();
        first = false;
    }
    return json_reply(200, list + "]");
}

reply simulator::control_deliveries(const inbound_request& req) const {
    const std::string since_text = query_param(req.query(), "since");
    const std::string limit_text = query_param(req.query(), "limit");
    std::uint64_t since = first_delivery_id_;
    std::size_t limit = 10'000;
    try {
        if (!since_text.empty()) since = std::max<std::uint64_t>(since, std::stoull(since_text));
        if (!limit_text.empty()) limit = std::min<std::size_t>(100'000, std::stoull(limit_text));
    } catch (const std::exception&) {
        return control_error(400, "since and limit must be integers");
    }
    std::string out = "{\"first\":" + std::to_string(first_delivery_id_) +
                      ",\"next\":" + std::to_string(next_delivery_id_) + ",\"deliveries\":[";
    std::size_t n = 0;
    for (std::uint64_t id = since; id < next_delivery_id_ && n < limit; ++id, ++n)
        out += (n ? "," : "") + delivery_json(deliveries_[id - first_delivery_id_]);
    return json_reply(200, out + "]}");
}

reply simulator::control_stats(const inbound_request&) const {
    std::int64_t planned = 0, dropped = 0, acknowledged = 0, pending = 0, attempts = 0;
    std::map<std::string, std::int64_t> kinds;
    for (const auto& d : deliveries_) {
        ++planned;
        ++kinds[d.kind];
        dropped += d.dropped;
        acknowledged += d.acknowledged;
        pending += !d.finished;
        attempts += static_cast<std::int64_t>(d.attempts.size());
    }
    json_object k;
    for (const auto& [name, n] : kinds) k.add(name, n);
    return json_reply(200, json_object()
                               .add("orders", static_cast<std::int64_t>(model_.size()))
                               .add("deliveries", planned)
                               .add("dropped", dropped)
                               .add("acknowledged", acknowledged)
                               .add("pending", pending)
                               .add("attempts", attempts)
                               .add("in_flight", in_flight_)
                               .add_raw("kinds", k.str())
                               .str());
}

reply simulator::control_calls(const inbound_request& req) const {
    std::uint64_t since = first_call_id_;
    try {
        const std::string text = query_param(req.query(), "since");
        if (!text.empty()) since = std::max<std::uint64_t>(since, std::stoull(text));
    } catch (const std::exception&) {
        return control_error(400, "since must be an integer");
    }
    std::string out = "{\"calls\":[";
    for (std::uint64_t id = since; id < next_call_id_; ++id) {
        const api_call& c = calls_[id - first_call_id_];
        out += (id == since ? "" : ",") + json_object()
                                              .add("id", static_cast<std::int64_t>(c.id))
                                              .add("mchid", c.mchid)
                                              .add("api", c.api)
                                              .add("call", c.what)
                                              .add("start_ms", c.start_ms)
                                              .add("end_ms", c.end_ms)
                                              .add("status", c.status)
                                              .str();
    }
    return json_reply(200, out + "]}");
}

// ---------------------------------------------------------------- writes

reply simulator::control_create_order(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    order_request r;
    r.mchid = m->keys->mchid;
    r.appid = m->keys->appid;
    r.amount_total = j.integer("amount").value_or(0);
    r.notify_url = j.str("notify_url").value_or("");
    r.description = j.str("description").value_or("wxpay-sim order");
    const std::string version =
        j.str("api_version").value_or(m->keys->version == api_version::v3 ? "v3" : "v2");
    if (version != "v3" && version != "v2") return control_error(400, "api_version must be v3 or v2");
    r.version = version == "v3" ? api_version::v3 : api_version::v2;
    const std::string sign = j.str("sign_type").value_or("MD5");
    if (sign != "MD5" && sign != "HMAC-SHA256")
        return control_error(400, "sign_type must be MD5 or HMAC-SHA256");
    r.v2_sign = sign == "MD5" ? protocol::v2::sign_type::md5 : protocol::v2::sign_type::hmac_sha256;
    if (const auto seconds = j.integer("expire_seconds")) r.expire_at = now() + *seconds;
    if (!r.notify_url.starts_with("http://")) return control_error(400, "notify_url must be an http:// URL");
    // One order, or a batch: prefix + first .. prefix + (first + count - 1).
    const auto batch = order_batch(j);
    if (!batch) return control_error(400, batch.err().message);
    std::string prepay_id;
    bool created = false;
    for (const std::string& out_trade_no : *batch) {
        r.out_trade_no = out_trade_no;
        r.openid = j.str("openid").value_or("o" + hex_lower(crypto::sha256(out_trade_no)).substr(0, 27));
        r.fingerprint = "control:" + out_trade_no;
        const auto result = model_.prepay(r, now());
        if (result.code != outcome::ok)
            return control_error(
                409, out_trade_no + ": " + std::string(to_string(result.code)) + ": " + result.message);
        prepay_id = result.record->prepay_id;
        created = created || result.created;
    }
    return json_reply(created ? 201 : 200, json_object()
                                               .add("orders", static_cast<std::int64_t>(batch->size()))
                                               .add("out_trade_no", batch->back())
                                               .add("prepay_id", prepay_id)
                                               .str());
}

reply simulator::control_pay(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const auto batch = order_batch(j);
    if (!batch) return control_error(400, batch.err().message);
    // at: the success time (a test pays at 23:59:59.5 Beijing); coupon: the part a coupon covers.
    const auto at = optional_time(j, "at");
    if (!at) return control_error(400, at.err().message);
    const std::int64_t coupon = j.integer("coupon").value_or(0);
    const std::uint64_t first = next_delivery_id_;
    std::string transaction_ids = "[";
    std::int64_t paid = 0;
    for (const std::string& out_trade_no : *batch) {
        const order_record* before = model_.find(m->keys->mchid, out_trade_no, now());
        if (coupon < 0 || (before != nullptr && coupon >= j.integer("amount").value_or(before->amount_total)))
            return control_error(400, out_trade_no + ": coupon must be in [0, paid amount)");
        const auto result =
            model_.pay(m->keys->mchid, out_trade_no, j.integer("amount"), at->value_or(now()));
        if (result.code != outcome::ok)
            return control_error(
                409, out_trade_no + ": " + std::string(to_string(result.code)) + ": " + result.message);
        result.record->coupon = coupon;
        result.record->fee_rate_bp = m->fee_rate_bp;
        transaction_ids += (transaction_ids.size() > 1 ? ",\"" : "\"") + result.record->transaction_id + "\"";
        paid = result.record->payer_total;
        notify_payment(*m, *result.record);
    }
    json_object out;
    if (batch->size() == 1)
        out.add("transaction_id", transaction_ids.substr(2, transaction_ids.size() - 3)).add("paid", paid);
    return json_reply(200, out.add_raw("transaction_ids", transaction_ids + "]")
                               .add("first_delivery", static_cast<std::int64_t>(first))
                               .add("deliveries", static_cast<std::int64_t>(next_delivery_id_ - first))
                               .str());
}

result<std::vector<std::string>> simulator::order_batch(const json_body& j) const {
    if (const auto no = j.str("out_trade_no")) return std::vector<std::string>{*no};
    const auto count = j.integer("count");
    const std::string prefix = j.str("prefix").value_or("");
    const std::int64_t first = j.integer("first").value_or(1);
    if (!count || *count < 1 || *count > 100'000 || prefix.empty() || first < 0)
        return make_error(errc::invalid_argument,
                          "give out_trade_no, or prefix with count (1..100000) and optional first");
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(*count));
    for (std::int64_t i = 0; i < *count; ++i) out.push_back(prefix + std::to_string(first + i));
    return out;
}

reply simulator::control_expire(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const auto result = model_.expire(j.str("mchid").value_or(""), j.str("out_trade_no").value_or(""), now());
    if (result.code != outcome::ok)
        return control_error(409, std::string(to_string(result.code)) + ": " + result.message);
    return json_reply(200, json_object().add("trade_state", "CLOSED").str());
}

reply simulator::control_refund(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const std::string out_trade_no = j.str("out_trade_no").value_or("");
    order_record* o = model_.find(m->keys->mchid, out_trade_no, now());
    if (o == nullptr) return control_error(404, "unknown order");
    const std::int64_t amount = j.integer("amount").value_or(o->payer_total - o->coupon - o->refunded());
    // at: when it was made and finished; notify false: made at WeChat only (the merchant platform),
    // unannounced.
    const auto at = optional_time(j, "at");
    if (!at) return control_error(400, at.err().message);
    const std::int64_t when = at->value_or(now());
    const bool notify = j.boolean("notify").value_or(true);
    const std::string status = j.str("status").value_or("SUCCESS");
    if (!is_success_refund(status)) return control_error(400, "status must be SUCCESS, ABNORMAL or CLOSED");
    const std::string out_refund_no =
        j.str("out_refund_no").value_or("R" + out_trade_no + "-" + std::to_string(o->refunds.size() + 1));
    auto result = model_.refund(m->keys->mchid, out_trade_no, out_refund_no, amount,
                                j.str("reason").value_or(""), j.str("notify_url").value_or(""), when);
    if (result.code != outcome::ok)
        return control_error(409, std::string(to_string(result.code)) + ": " + result.message);
    const auto final_status = *domain::parse_refund_status(status);
    const auto done = model_.finish_refund(m->keys->mchid, out_refund_no, final_status, when);
    if (done.code == outcome::ok && notify) notify_refund(*m, *o, *done.record);
    return json_reply(200, json_object()
                               .add("out_refund_no", out_refund_no)
                               .add("refund_id", result.record->refund_id)
                               .add("amount", amount)
                               .add("status", status)
                               .str());
}

reply simulator::control_faults(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const auto mchid = j.str("mchid");
    std::vector<merchant_state*> targets;
    if (mchid) {
        merchant_state* m = merchant(*mchid);
        if (m == nullptr) return control_error(404, "unknown mchid");
        targets.push_back(m);
    } else {
        for (auto& [id, m] : merchants_) targets.push_back(&m);
    }
    for (merchant_state* m : targets) {
        if (auto applied = apply_fault_json(body, m->faults); !applied)
            return control_error(400, applied.err().message);
    }
    return json_reply(200, targets.front()->faults.to_json());
}

reply simulator::control_rotate(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    // "gradual": callbacks move to the new certificate, API answers stay on the current one
    // (docs/protocol-notes.md §2.4: during a rotation either serial may appear); a plain rotation moves both
    // at once.
    const bool gradual = j.boolean("gradual").value_or(false);
    const std::size_t current = m->keys->certificates.size() - 1;
    rotate_certificate(*m);
    m->answers_sign_with = gradual ? std::optional<std::size_t>(current) : std::nullopt;
    return json_reply(200, json_object().add("serial", m->keys->certificates.back().serial).str());
}

}  // namespace wxrecon::sim
