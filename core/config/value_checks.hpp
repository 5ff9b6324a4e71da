// The checks configuration values go through, shared by the configuration
// and key-material loaders: character classes, values quoted for messages,
// listen addresses and URLs. Internal to core/config.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace wxrecon::config::text {

bool is_digit(char c);
bool is_alpha(char c);
bool is_hex(char c);
bool is_space_or_control(char c);
bool all_digits(std::string_view s);
char to_lower_ascii(char c);
char to_upper_ascii(char c);
bool iequals(std::string_view a, std::string_view b);
// Levenshtein distance: a misspelt key is named with its likely intended spelling.
std::size_t edit_distance(std::string_view a, std::string_view b);

// Values are echoed in messages; escaping keeps a stray control byte from corrupting a log line.
std::string quote(std::string_view text);

// Editors add one final newline to a secret file; exactly one "\n" or "\r\n" is dropped. More, or
// other whitespace, is kept: it may be key material.
void strip_final_newline(std::string& secret);

// What is wrong with a listen address ("host:port", IPv6 as "[::1]:8080"), or nullopt.
std::optional<std::string> listen_problem(std::string_view text);

enum class url_rule {
    http_or_https,          // our own addresses: a reverse proxy may terminate TLS in front of us
    https_unless_loopback,  // WeChat endpoints: plain http only to a local simulator
    webhook                 // used as given: a query may carry the receiver's key (a WeCom robot's)
};

// Returns the URL without trailing slashes (callers append "/v3/..." paths; a webhook URL is kept as
// given), or what is wrong with it. Messages never repeat a query: it may be a secret.
result<std::string> check_url(std::string_view text, url_rule rule);

}  // namespace wxrecon::config::text
