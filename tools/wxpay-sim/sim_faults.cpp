#include "sim_faults.hpp"

#include <simdjson.h>

#include <cstdio>

#include "base/json_writer.hpp"

namespace wxrecon::sim {

namespace {

std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
    for (const unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace

std::uint64_t seeded_hash(std::uint64_t seed, std::string_view what, std::string_view subject,
                          std::uint64_t n) {
    std::uint64_t h = 0xcbf29ce484222325ULL ^ splitmix(seed);
    h = fnv1a(h, what);
    h = fnv1a(h, std::string_view("\x1f", 1));
    h = fnv1a(h, subject);
    return splitmix(h ^ splitmix(n + 0x632be59bd9b4e019ULL));
}

double seeded_draw(std::uint64_t seed, std::string_view what, std::string_view subject, std::uint64_t n) {
    return static_cast<double>(seeded_hash(seed, what, subject, n) >> 11) * 0x1.0p-53;
}

std::string fault_config::to_json() const {
    auto rate = [](double r) {
        char text[32];
        std::snprintf(text, sizeof text, "%.6g", r);
        return std::string(text);
    };
    json_object j;
    j.add_raw("drop", rate(drop))
        .add_raw("duplicate", rate(duplicate))
        .add_raw("concurrent", rate(concurrent))
        .add_raw("delay", rate(delay))
        .add("delay_ms", delay_ms)
        .add("reorder", reorder)
        .add("reorder_window_ms", reorder_window_ms)
        .add_raw("query_429", rate(query_429))
        .add_raw("query_500", rate(query_500))
        .add_raw("query_slow", rate(query_slow))
        .add_raw("reply_slow", rate(reply_slow))
        .add("slow_ms", slow_ms)
        .add_raw("bad_response_signature", rate(bad_response_signature))
        .add_raw("unsigned_errors", rate(unsigned_errors))
        .add_raw("query_404_proxy", rate(query_404_proxy))
        .add_raw("forged", rate(forged))
        .add_raw("probe", rate(probe))
        .add("rotate_certificate_after", rotate_certificate_after)
        .add("refund_processing_ms", refund_processing_ms)
        .add_raw("refund_abnormal", rate(refund_abnormal))
        .add_raw("refund_closed", rate(refund_closed));
    return j.str();
}

status apply_fault_json(std::string_view json, fault_config& into) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(json);
    simdjson::dom::object obj;
    if (parser.parse(padded).get(obj) != simdjson::SUCCESS)
        return make_error(errc::invalid_argument, "faults: body is not a JSON object");
    fault_config next = into;
    struct rate_field {
        std::string_view name;
        double fault_config::*member;
    };
    static constexpr rate_field rates[] = {
        {"drop", &fault_config::drop},
        {"duplicate", &fault_config::duplicate},
        {"concurrent", &fault_config::concurrent},
        {"delay", &fault_config::delay},
        {"query_429", &fault_config::query_429},
        {"query_500", &fault_config::query_500},
        {"query_slow", &fault_config::query_slow},
        {"reply_slow", &fault_config::reply_slow},
        {"refund_abnormal", &fault_config::refund_abnormal},
        {"refund_closed", &fault_config::refund_closed},
        {"bad_response_signature", &fault_config::bad_response_signature},
        {"unsigned_errors", &fault_config::unsigned_errors},
        {"query_404_proxy", &fault_config::query_404_proxy},
        {"forged", &fault_config::forged},
        {"probe", &fault_config::probe},
    };
    struct int_field {
        std::string_view name;
        std::int64_t fault_config::*member;
    };
    static constexpr int_field ints[] = {
        {"delay_ms", &fault_config::delay_ms},
        {"reorder_window_ms", &fault_config::reorder_window_ms},
        {"slow_ms", &fault_config::slow_ms},
        {"rotate_certificate_after", &fault_config::rotate_certificate_after},
        {"refund_processing_ms", &fault_config::refund_processing_ms},
    };
    for (auto [k, v] : obj) {
        if (k == "mchid") continue;
        if (k == "reorder") {
            bool b = false;
            if (v.get(b) != simdjson::SUCCESS)
                return make_error(errc::invalid_argument, "faults: reorder must be true or false");
            next.reorder = b;
            continue;
        }
        bool known = false;
        for (const auto& f : rates) {
            if (k != f.name) continue;
            double d = 0;
            if (v.get(d) != simdjson::SUCCESS || !(d >= 0 && d <= 1))
                return make_error(errc::invalid_argument,
                                  "faults: " + std::string(k) + " must be a number from 0 to 1");
            next.*f.member = d;
            known = true;
        }
        for (const auto& f : ints) {
            if (k != f.name) continue;
            std::int64_t n = 0;
            if (v.get(n) != simdjson::SUCCESS || n < 0 || n > 86'400'000)
                return make_error(errc::invalid_argument,
                                  "faults: " + std::string(k) + " must be an integer from 0 to 86400000");
            next.*f.member = n;
            known = true;
        }
        if (!known) return make_error(errc::invalid_argument, "faults: unknown key " + std::string(k));
    }
    // One draw decides a refund's end: ABNORMAL below refund_abnormal, CLOSED in the next refund_closed.
    if (next.refund_abnormal + next.refund_closed > 1)
        return make_error(errc::invalid_argument,
                          "faults: refund_abnormal + refund_closed must not exceed 1");
    into = next;
    return ok;
}

std::string protocol_variants::to_json() const {
    json_object j;
    j.add("old_not_found_spelling", old_not_found_spelling)
        .add("alt_rate_limit_spelling", alt_rate_limit_spelling)
        .add("old_system_error_spelling", old_system_error_spelling)
        .add("close_paid_is_trade_error", close_paid_is_trade_error)
        .add("close_closed_is_error", close_closed_is_error)
        .add("unpaid_query_minimal", unpaid_query_minimal)
        .add("v2_notify_without_sign_type", v2_notify_without_sign_type)
        .add("bill_bom", bill_bom)
        .add("bill_crlf", bill_crlf)
        .add("bill_count_dot_zero", bill_count_dot_zero);
    return j.str();
}

protocol_variants pick_variants(std::uint64_t seed, std::string_view mchid) {
    auto coin = [&](std::string_view which) { return seeded_draw(seed, which, mchid) < 0.5; };
    protocol_variants v;
    v.old_not_found_spelling = coin("variant.not_found");
    v.alt_rate_limit_spelling = coin("variant.rate_limit");
    v.old_system_error_spelling = coin("variant.system_error");
    v.close_paid_is_trade_error = coin("variant.close_paid");
    v.close_closed_is_error = coin("variant.close_closed");
    v.unpaid_query_minimal = coin("variant.unpaid_query");
    v.v2_notify_without_sign_type = coin("variant.v2_sign_type");
    v.bill_bom = coin("variant.bill_bom");
    v.bill_crlf = coin("variant.bill_crlf");
    v.bill_count_dot_zero = coin("variant.bill_count");
    return v;
}

}  // namespace wxrecon::sim
