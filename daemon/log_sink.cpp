#include "log_sink.hpp"

#include <unistd.h>
#include <chrono>
#include <ctime>
#include <mutex>
#include <string>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "base/log_format.hpp"

namespace wxrecon::daemon {
namespace {

constexpr std::size_t flush_threshold = 16 * 1024;

class buffered_stderr_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    ~buffered_stderr_sink() override {
        flush_();
    }  // the last lines before exit are the ones that matter most

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

// Measurements become JSON numbers; everything else stays a string, so an identifier made of digits (an
// mchid, an out_trade_no) keeps its type in every line and log stores never see a field change type.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = std::chrono::system_clock::to_time_t(msg.time);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
        std::tm utc{};
        gmtime_r(&t, &utc);
        char stamp[40];
        const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
        std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms));
        const auto level = spdlog::level::to_string_view(msg.level);
        const std::string line = json_log_line(stamp, std::string_view(level.data(), level.size()),
                                               std::string_view(msg.payload.data(), msg.payload.size())) +
                                 "\n";
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

}  // namespace

void install_stderr_logger(log_format format) {
    auto logger = std::make_shared<spdlog::logger>("wxrecond", std::make_shared<buffered_stderr_sink>());
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    if (format == log_format::json)
        spdlog::set_formatter(std::make_unique<json_formatter>());
    else
        spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=warn (or debug) overrides the default info level
    spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace wxrecon::daemon
