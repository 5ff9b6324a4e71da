#include "config/value_checks.hpp"

#include "config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace wxrecon::config::text {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_space_or_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
}
bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

char to_lower_ascii(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char to_upper_ascii(char c) {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_lower_ascii(x) == to_lower_ascii(y);
           });
}

void strip_final_newline(std::string& secret) {
    if (secret.ends_with("\r\n")) {
        secret.resize(secret.size() - 2);
    } else if (secret.ends_with('\n')) {
        secret.pop_back();
    }
}

std::string quote(std::string_view text) {
    static constexpr char hex_digits[] = "0123456789ABCDEF";
    std::string out = "\"";
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            out += "\\x";
            out += hex_digits[u >> 4];
            out += hex_digits[u & 0xf];
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

// --- host, port and URL checks --------------------------------------------------------------------------

namespace {

bool is_ipv4_literal(std::string_view text, in_addr* out = nullptr) {
    in_addr addr{};
    const bool ok = inet_pton(AF_INET, std::string(text).c_str(), &addr) == 1;
    if (ok && out != nullptr) *out = addr;
    return ok;
}

bool is_ipv6_literal(std::string_view text, in6_addr* out = nullptr) {
    in6_addr addr{};
    const bool ok = inet_pton(AF_INET6, std::string(text).c_str(), &addr) == 1;
    if (ok && out != nullptr) *out = addr;
    return ok;
}

// A DNS name or dotted IPv4 address. Underscores are tolerated because container and
// compose service names use them.
bool is_host_name(std::string_view host) {
    return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return is_alpha(c) || is_digit(c) || c == '.' || c == '-' || c == '_';
    });
}

// http:// is acceptable only where the traffic cannot leave the machine.
bool is_loopback_host(std::string_view host, bool bracketed) {
    if (bracketed) {
        in6_addr addr{};
        if (!is_ipv6_literal(host, &addr)) return false;
        if (IN6_IS_ADDR_LOOPBACK(&addr)) return true;
        return IN6_IS_ADDR_V4MAPPED(&addr) && addr.s6_addr[12] == 127;
    }
    if (iequals(host, "localhost")) return true;
    in_addr addr{};
    if (!is_ipv4_literal(host, &addr)) return false;
    return (ntohl(addr.s_addr) >> 24) == 127;
}

std::optional<std::string> port_problem(std::string_view port, bool allow_zero) {
    if (port.empty()) return "the port is missing";
    const std::string range = allow_zero ? "0..65535" : "1..65535";
    if (!all_digits(port) || port.size() > 5)
        return "the port must be a number " + range + ", got " + quote(port);
    const long value = std::stol(std::string(port));
    if (value > 65535 || (!allow_zero && value == 0))
        return "the port must be a number " + range + ", got " + quote(port);
    return std::nullopt;
}

struct host_port {
    std::string_view host;
    std::optional<std::string_view> port;  // absent: no ":port" part at all
    bool bracketed = false;
};

// Splits "host", "host:port", "[v6]" or "[v6]:port"; the caller decides whether a port is required.
result<host_port> split_host_port(std::string_view text) {
    host_port out;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return make_error(errc::invalid_argument, "unterminated \"[\" in " + quote(text));
        }
        out.host = text.substr(1, close - 1);
        out.bracketed = true;
        const auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return make_error(errc::invalid_argument,
                                  "expected \":port\" after the IPv6 address in " + quote(text));
            }
            out.port = rest.substr(1);
        }
        if (!is_ipv6_literal(out.host)) {
            return make_error(errc::invalid_argument, quote(out.host) + " is not an IPv6 address");
        }
        return out;
    }
    const auto colon = text.rfind(':');
    out.host = text.substr(0, colon);
    if (colon != std::string_view::npos) out.port = text.substr(colon + 1);
    if (out.host.find(':') != std::string_view::npos) {
        return make_error(
            errc::invalid_argument,
            "an IPv6 address must be written in brackets, e.g. \"[::1]:8080\", got " + quote(text));
    }
    if (out.host.empty()) return make_error(errc::invalid_argument, "the host is missing in " + quote(text));
    if (!is_host_name(out.host)) return make_error(errc::invalid_argument, "invalid host " + quote(out.host));
    return out;
}

}  // namespace

std::optional<std::string> listen_problem(std::string_view text) {
    auto parts = split_host_port(text);
    if (!parts) return parts.err().message;
    if (!parts->port) return "expected \"host:port\" (IPv6 as \"[::1]:8080\"), got " + quote(text);
    return port_problem(*parts->port, true);
}

result<std::string> check_url(std::string_view text, url_rule rule) {
    const std::string shown_text = text.find('?') == std::string_view::npos
                                       ? std::string(text)
                                       : std::string(text.substr(0, text.find('?'))) + "?…";
    auto shown = [&shown_text] { return quote(shown_text); };
    auto bad = [&](const std::string& why) { return make_error(errc::invalid_argument, why); };
    if (std::any_of(text.begin(), text.end(), is_space_or_control)) {
        return bad("must not contain whitespace or control characters");
    }
    bool https = false;
    std::string_view rest;
    if (text.starts_with("https://")) {
        https = true;
        rest = text.substr(8);
    } else if (text.starts_with("http://")) {
        rest = text.substr(7);
    } else {
        return bad("must be an http:// or https:// URL, got " + shown());
    }
    const auto authority_end = rest.find_first_of("/?#");
    const auto authority = rest.substr(0, authority_end);
    if (authority_end != std::string_view::npos &&
        rest.find_first_of(rule == url_rule::webhook ? "#" : "?#", authority_end) != std::string_view::npos) {
        return bad(rule == url_rule::webhook ? "must not contain a fragment, got " + shown()
                                             : "must not contain a query or fragment, got " + shown());
    }
    if (authority.find('@') != std::string_view::npos) {
        return bad("must not contain user credentials, got " + shown());
    }
    if (authority.empty()) return bad("the host is missing in " + shown());
    auto parts = split_host_port(authority);
    if (!parts) return parts.err();
    if (parts->port) {
        if (auto problem = port_problem(*parts->port, false)) return bad(*problem);
    }
    if (rule == url_rule::https_unless_loopback && !https &&
        !is_loopback_host(parts->host, parts->bracketed)) {
        return bad(
            "http:// is allowed only for a loopback host (127.0.0.0/8, [::1], localhost); use https://, "
            "got " +
            shown());
    }
    std::string out(text);
    if (rule == url_rule::webhook) return out;
    while (out.back() == '/') out.pop_back();  // the authority is non-empty, so this stops before "//"
    return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0u : 1u)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

}  // namespace wxrecon::config::text

namespace wxrecon::config {

using namespace text;

result<duration> parse_duration(std::string_view text) {
    auto bad = [&](const std::string& why) {
        return make_error(errc::invalid_argument, "invalid duration " + quote(text) + ": " + why);
    };
    if (text.empty()) return bad("empty (expected e.g. \"500ms\", \"5s\", \"1h30m\")");
    constexpr std::int64_t limit = std::numeric_limits<duration::rep>::max();
    std::int64_t total_ms = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t number_start = i;
        std::uint64_t number = 0;
        bool too_large = false;
        for (; i < text.size() && is_digit(text[i]); ++i) {
            const auto digit = static_cast<std::uint64_t>(text[i] - '0');
            if (number > (static_cast<std::uint64_t>(limit) - digit) / 10) too_large = true;
            if (!too_large) number = number * 10 + digit;
        }
        if (i == number_start) {
            const char c = text[i];
            if (c == '-') return bad("negative durations are not allowed");
            if (is_space_or_control(c)) return bad("whitespace is not allowed");
            if (is_alpha(c)) return bad("a unit must follow a number, e.g. \"5s\"");
            return bad("unexpected character " + quote(text.substr(i, 1)));
        }
        const std::size_t unit_start = i;
        while (i < text.size() && is_alpha(text[i])) ++i;
        const std::string_view unit = text.substr(unit_start, i - unit_start);
        if (unit.empty()) {
            if (i == text.size())
                return bad("missing unit after " + std::string(text.substr(number_start)) +
                           " (units: ms, s, m, h, d)");
            if (is_space_or_control(text[i])) return bad("whitespace is not allowed");
            return bad("unexpected character " + quote(text.substr(i, 1)));
        }
        std::int64_t unit_ms = 0;
        if (unit == "ms") {
            unit_ms = 1;
        } else if (unit == "s") {
            unit_ms = 1000;
        } else if (unit == "m") {
            unit_ms = 60 * 1000;
        } else if (unit == "h") {
            unit_ms = 60 * 60 * 1000;
        } else if (unit == "d") {
            unit_ms = 24 * 60 * 60 * 1000;
        } else {
            return bad("unknown unit " + quote(unit) + " (units: ms, s, m, h, d)");
        }
        if (too_large || number > static_cast<std::uint64_t>(limit / unit_ms)) return bad("too large");
        const auto part = static_cast<std::int64_t>(number) * unit_ms;
        if (total_ms > limit - part) return bad("too large");
        total_ms += part;
    }
    return duration(total_ms);
}

}  // namespace wxrecon::config
