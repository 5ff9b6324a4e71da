#include "log_sink.hpp"

#include <charconv>
#include <chrono>
#include <ctime>
#include <mutex>
#include <string>
#include <unistd.h>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "base/json_writer.hpp"

namespace wxrecon::daemon {
namespace {

constexpr std::size_t flush_threshold = 16 * 1024;

class buffered_stderr_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    ~buffered_stderr_sink() override { flush_(); }  // the last lines before exit are the ones that matter most

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
bool is_measurement(std::string_view key, std::string_view value) {
    const bool numeric_key = key == "ms" || key.ends_with("_ms") || key.ends_with("_s") || key == "version" ||
                             key == "attempts";
    if (!numeric_key || value.empty() || value.size() > 24) return false;
    double d = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
    return ec == std::errc() && end == value.data() + value.size();
}

class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = std::chrono::system_clock::to_time_t(msg.time);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
        std::tm utc{};
        gmtime_r(&t, &utc);
        char stamp[40];
        const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
        std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms));
        const auto level = spdlog::level::to_string_view(msg.level);
        const std::string line = json_log_line(stamp, std::string_view(level.data(), level.size()),
                                               std::string_view(msg.payload.data(), msg.payload.size())) + "\n";
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

}  // namespace

std::string json_log_line(std::string_view time, std::string_view level, std::string_view message) {
    json_object out;
    out.add("time", time).add("level", level);
    std::string_view rest = message;
    if (const auto colon = rest.find(": "); colon != std::string_view::npos && colon > 0 &&
                                            rest.substr(0, colon).find(' ') == std::string_view::npos) {
        out.add("component", rest.substr(0, colon));
        rest.remove_prefix(colon + 2);
    }
    std::string event;
    std::string fields;  // rendered "key":value pairs, appended after the fixed ones
    while (!rest.empty()) {
        if (rest.front() == ' ') {
            rest.remove_prefix(1);
            continue;
        }
        const auto eq = rest.find('=');
        const auto space = rest.find(' ');
        const bool pair = eq != std::string_view::npos && eq > 0 && (space == std::string_view::npos || eq < space);
        if (!pair) {
            const std::string_view word = rest.substr(0, space);
            if (!event.empty()) event.push_back(' ');
            event.append(word);
            rest.remove_prefix(word.size());
            continue;
        }
        const std::string_view key = rest.substr(0, eq);
        rest.remove_prefix(eq + 1);
        std::string value;
        bool quoted = false;
        if (!rest.empty() && rest.front() == '"') {
            quoted = true;
            std::size_t i = 1;
            for (; i < rest.size() && rest[i] != '"'; ++i) {
                if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
                value.push_back(rest[i]);
            }
            rest.remove_prefix(std::min(i + 1, rest.size()));
        } else {
            const std::string_view raw = rest.substr(0, rest.find(' '));
            value.assign(raw);
            rest.remove_prefix(raw.size());
        }
        fields.push_back(',');
        append_json_string(fields, key);
        fields.push_back(':');
        if (!quoted && is_measurement(key, value)) fields += value;
        else append_json_string(fields, value);
    }
    if (!event.empty()) out.add("event", event);
    out.add("msg", message);
    std::string text = out.str();
    text.insert(text.size() - 1, fields);
    return text;
}

void install_stderr_logger(log_format format) {
    auto logger = std::make_shared<spdlog::logger>("wxrecond", std::make_shared<buffered_stderr_sink>());
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    if (format == log_format::json) spdlog::set_formatter(std::make_unique<json_formatter>());
    else spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=warn (or debug) overrides the default info level
    spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace wxrecon::daemon
