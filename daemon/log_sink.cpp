#include "log_sink.hpp"

#include <mutex>
#include <string>
#include <unistd.h>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace wxrecon::daemon {
namespace {

constexpr std::size_t flush_threshold = 16 * 1024;

class buffered_stderr_sink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        buffer_.append(formatted.data(), formatted.size());
        if (buffer_.size() >= flush_threshold) flush_();
    }

    void flush_() override {
        std::size_t done = 0;
        while (done < buffer_.size()) {
            const ssize_t n = ::write(STDERR_FILENO, buffer_.data() + done, buffer_.size() - done);
            if (n <= 0) break;  // stderr gone: drop the lines rather than block or spin
            done += static_cast<std::size_t>(n);
        }
        buffer_.clear();
    }

private:
    std::string buffer_;
};

}  // namespace

void install_stderr_logger() {
    auto logger = std::make_shared<spdlog::logger>("wxrecond", std::make_shared<buffered_stderr_sink>());
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=warn (or debug) overrides the default info level
    spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace wxrecon::daemon
