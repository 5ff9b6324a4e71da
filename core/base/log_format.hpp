// A log line as one JSON object, for log shippers (wxrecond --log-format json).
#pragma once

#include <string>
#include <string_view>

namespace wxrecon {

// time, level, component (the text before the first ": "), event (the words that are not key=value),
// every key=value pair as a field ("quoted" values unquoted; latencies such as ms and *_ms as numbers,
// identifiers always strings; a key already present is dropped, so text inside a value cannot override
// a field) and the whole message as msg.
std::string json_log_line(std::string_view time, std::string_view level, std::string_view message);

}  // namespace wxrecon
