// Logging to stderr without a write(2) per line: lines are buffered and flushed
// when the buffer fills, every second, and at once for warnings and errors, so
// a notification's log line costs the event loop a memcpy, not a syscall.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

namespace wxrecon::daemon {

enum class log_format { text, json };

// Installs the default logger: stderr (journald under systemd), buffered as above.
void install_stderr_logger(log_format format = log_format::text);

// One log line as a JSON object for log shippers: time, level, component (the text before the first
// ": "), event (the words that are not key=value), every key=value pair as a field ("quoted" values
// unquoted; latencies such as ms and *_ms as numbers, identifiers always strings) and the whole message
// as msg.
std::string json_log_line(std::string_view time, std::string_view level, std::string_view message);

}  // namespace wxrecon::daemon
