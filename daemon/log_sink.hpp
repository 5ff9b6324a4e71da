// Logging to stderr without a write(2) per line: lines are buffered and flushed
// when the buffer fills, every second, and at once for warnings and errors, so
// a notification's log line costs the event loop a memcpy, not a syscall.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace wxrecon::daemon {

enum class log_format { text, json };

// Installs the default logger: stderr (journald under systemd), buffered as above.
void install_stderr_logger(log_format format = log_format::text);

}  // namespace wxrecon::daemon
