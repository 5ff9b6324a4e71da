// The app-event receiver: POST /sim/app-events records what wxrecond sent
// (body, headers, whether its signature verifies) and answers the configured
// status; POST /sim/app-events-config sets the secret and that status; GET
// /sim/app-events lists what arrived.
#include "sim_app_events.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <tuple>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"

namespace wxrecon::sim {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The body's top-level "id" and "type", "" when absent or not a JSON object. One parse, by a parser kept
// for the thread: the receiver runs beside wxrecond in benchmarks of thousands of events a second, and a
// new parser allocates its buffers again (the previous code also parsed once per field).
std::pair<std::string, std::string> id_and_type(std::string_view body) {
    static thread_local simdjson::dom::parser parser;
    simdjson::dom::object o;
    if (parser.parse(simdjson::padded_string(body)).get(o) != simdjson::SUCCESS) return {};
    const auto field = [&o](std::string_view key) {
        std::string_view v;
        return o.at_key(key).get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
    };
    return {field("id"), field("type")};
}

std::string header_of(const std::vector<std::pair<std::string, std::string>>& headers,
                      std::string_view name) {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

}  // namespace

std::string check_app_event_signature(std::string_view header, std::string_view body, std::string_view secret,
                                      std::int64_t now, std::int64_t tolerance_seconds) {
    if (secret.empty()) return "no secret configured";
    if (header.empty()) return "no X-Wxrecon-Signature header";
    std::string_view t_text;
    std::vector<std::string_view> v1s;
    while (!header.empty()) {
        const auto comma = header.find(',');
        const std::string_view part = trim(header.substr(0, comma));
        const auto eq = part.find('=');
        if (eq != std::string_view::npos) {
            const std::string_view k = part.substr(0, eq);
            if (k == "t") t_text = part.substr(eq + 1);
            if (k == "v1") v1s.push_back(part.substr(eq + 1));
        }
        if (comma == std::string_view::npos) break;
        header.remove_prefix(comma + 1);
    }
    std::int64_t t = 0;
    const auto [end, ec] = std::from_chars(t_text.data(), t_text.data() + t_text.size(), t);
    if (t_text.empty() || ec != std::errc() || end != t_text.data() + t_text.size()) return "no valid t=";
    if (v1s.empty()) return "no v1=";
    std::string signed_text(t_text);
    signed_text.push_back('.');
    signed_text.append(body);
    const std::string expected = hex_lower(crypto::hmac_sha256(secret, signed_text));
    bool match = false;
    for (const std::string_view v : v1s) match = constant_time_equal(expected, v) || match;
    if (!match) return "v1 does not match";
    // The timestamp is judged only once the HMAC proves it is the sender's.
    if (t < now - tolerance_seconds || t > now + tolerance_seconds)
        return "t is more than " + std::to_string(tolerance_seconds) + " s from now";
    return {};
}

int app_event_log::receive(std::vector<std::pair<std::string, std::string>> headers, std::string body,
                           std::int64_t now) {
    while (events_.size() >= max_events) {
        events_.pop_front();
        ++first_;
    }
    app_event e;
    e.n = next_++;
    e.received_at = now;
    e.event_id = header_of(headers, "X-Wxrecon-Event-Id");
    std::tie(e.id, e.type) = id_and_type(body);
    e.signature_error =
        check_app_event_signature(header_of(headers, "X-Wxrecon-Signature"), body, secret_, now);
    e.signature_ok = e.signature_error.empty();
    signature_failures_ += !e.signature_ok;
    e.answered = status_;
    e.headers = std::move(headers);
    e.body = std::move(body);
    events_.push_back(std::move(e));
    return status_;
}

void app_event_log::configure(std::string secret, int status) {
    secret_ = std::move(secret);
    status_ = status;
}

void app_event_log::clear() {
    first_ = next_;
    events_.clear();
    signature_failures_ = 0;
}

std::string app_event_log::to_json(std::uint64_t since, std::size_t limit) const {
    since = std::max(since, first_);
    std::string list = "[";
    std::size_t n = 0;
    for (std::uint64_t i = since; i < next_ && n < limit; ++i, ++n) {
        const app_event& e = events_[i - first_];
        json_object headers;
        for (const auto& [k, v] : e.headers) headers.add(k, v);
        json_object j;
        j.add("n", static_cast<std::int64_t>(e.n))
            .add("received_at", format_rfc3339(e.received_at))
            .add("event_id", e.event_id)
            .add("id", e.id)
            .add("type", e.type)
            .add("signature_ok", e.signature_ok);
        if (!e.signature_ok) j.add("signature_error", e.signature_error);
        j.add("status", e.answered).add_raw("headers", headers.str()).add("body", e.body);
        list += (n ? "," : "") + j.str();
    }
    return json_object()
        .add("first", static_cast<std::int64_t>(first_))
        .add("next", static_cast<std::int64_t>(next_))
        .add("received", static_cast<std::int64_t>(next_ - 1))
        .add("kept", static_cast<std::int64_t>(events_.size()))
        .add("max_kept", static_cast<std::int64_t>(max_events))
        .add("signature_failures", static_cast<std::int64_t>(signature_failures_))
        .add_raw("events", list + "]")
        .str();
}

std::string app_event_log::config_json() const {
    return json_object().add("secret_set", !secret_.empty()).add("status", status_).str();
}

// ---------------------------------------------------------------- the simulator's endpoints

reply simulator::receive_app_event(const inbound_request& req) {
    const int status = app_events_.receive(req.headers, req.body, now());
    return reply{status, "", ""};
}

reply simulator::control_app_events(const inbound_request& req) const {
    std::uint64_t since = 1;
    std::size_t limit = 10'000;
    try {
        const std::string since_text = query_param(req.query(), "since");
        const std::string limit_text = query_param(req.query(), "limit");
        if (!since_text.empty()) since = std::stoull(since_text);
        if (!limit_text.empty())
            limit = std::min<std::size_t>(app_event_log::max_events, std::stoull(limit_text));
    } catch (const std::exception&) {
        return control_error(400, "since and limit must be integers");
    }
    return json_reply(200, app_events_.to_json(since, limit));
}

reply simulator::control_app_events_config(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    for (auto [k, v] : j.object) {
        if (k != "secret" && k != "status" && k != "clear")
            return control_error(400, "unknown key " + std::string(k) + " (secret, status, clear)");
        if ((k == "secret" && !v.is_string()) || (k == "status" && !v.is_int64()) ||
            (k == "clear" && !v.is_bool()))
            return control_error(400, "secret is a string, status an integer, clear true or false");
    }
    const std::int64_t status = j.integer("status").value_or(app_events_.status());
    if (status < 200 || status > 599)
        return control_error(400, "status must be an HTTP status from 200 to 599");
    app_events_.configure(j.str("secret").value_or(app_events_.secret()), static_cast<int>(status));
    if (j.boolean("clear").value_or(false)) app_events_.clear();
    return json_reply(200, app_events_.config_json());
}

}  // namespace wxrecon::sim
