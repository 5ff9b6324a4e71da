// Byte-string encodings used on the wire (Base64, hex) and a constant-time
// comparison for secrets and signatures.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wxrecon {

std::string base64_encode(std::string_view bytes);
// Strict standard Base64 with padding; whitespace or stray characters give nullopt.
std::optional<std::string> base64_decode(std::string_view text);

std::string hex_upper(std::string_view bytes);
std::string hex_lower(std::string_view bytes);

// Runs in time that depends only on the lengths, never on where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// Case-insensitive ASCII equality (HTTP header names, hex serials).
bool iequals(std::string_view a, std::string_view b) noexcept;

// s with line breaks and other control characters turned into spaces: text from outside (database or
// WeChat Pay messages) kept to the one log line it belongs to.
std::string single_line(std::string_view s);

// s as one quoted log value: at most max_bytes of it (valid UTF-8), on one line, with `"` and `\`
// escaped, so text from outside (a header, a database or WeChat Pay message) can neither end the value
// early nor forge fields after it.
std::string log_quote(std::string_view s, std::size_t max_bytes = 300);

// An identifier from outside (WeChat Pay's Request-ID) as one bare log token: at most 64 characters,
// any but [A-Za-z0-9._:-] turned into '_'; "-" when empty.
std::string log_token(std::string_view s);

// Whether an inbound Request-ID has the shape WeChat Pay's have (hex runs joined by single hyphens, such
// as "08F78BB5AA0610A7C2D5FC0318D7C3D9F702-268512771" or a UUID; 16 to 64 characters, at least 16 hex
// digits): only such a one is kept as the request's id. Anything else, including an imitation of the ids
// wxrecond makes up (which name their listener), is replaced, so a caller cannot pass off its requests
// as another's in the logs.
bool is_wechat_request_id(std::string_view s);

// An order or refund number as a log value: bare when it keeps WeChat Pay's rule for such numbers
// (at most 64 of [0-9A-Za-z_-|*], not empty), else log_quote'd, so a number inserted by hand cannot
// forge log fields.
std::string log_id(std::string_view s);

}  // namespace wxrecon
