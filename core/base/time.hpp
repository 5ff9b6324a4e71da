// Calendar arithmetic without the C library's locale and TZ state: RFC 3339
// timestamps as WeChat Pay writes them, and civil (proleptic Gregorian) dates
// converted to Unix seconds for certificates and APIv2 Beijing times.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace wxrecon {

// Beijing time is UTC+8 all year (China has no daylight saving time); WeChat Pay's days and APIv2
// times are Beijing's.
inline constexpr std::int64_t beijing_offset_seconds = 8 * 3600;

// Wall-clock time as WeChat Pay and the ledger see it, the one source every component asks. Injected:
// a component takes a wall_clock (default: the system's) and a test hands it one it controls.
class wall_clock {
public:
    using source = std::function<std::int64_t()>;  // Unix microseconds

    wall_clock() = default;  // the system clock
    explicit wall_clock(source unix_micros) : source_(std::move(unix_micros)) {}

    std::int64_t micros() const;                                   // Unix microseconds
    std::int64_t seconds() const { return micros() / 1'000'000; }  // Unix seconds, rounded down

private:
    source source_;
};

// The system's wall clock now, in Unix microseconds.
std::int64_t system_micros() noexcept;

// A clock a test sets and moves by hand; the wall_clocks it hands out all follow it.
class manual_clock {
public:
    explicit manual_clock(std::int64_t unix_micros)
        : now_(std::make_shared<std::atomic<std::int64_t>>(unix_micros)) {}
    wall_clock clock() const {
        return wall_clock([now = now_] { return now->load(); });
    }
    void set(std::int64_t unix_micros) { now_->store(unix_micros); }
    void advance(std::int64_t micros) { now_->fetch_add(micros); }

private:
    std::shared_ptr<std::atomic<std::int64_t>> now_;
};

// "2018-06-08T10:34:56+08:00", "2018-06-08T02:34:56.123Z" -> Unix seconds. The offset (Z or +hh:mm /
// -hh:mm) is required; fractional seconds are accepted and dropped. Anything else is
// errc::invalid_argument with a message saying what is wrong.
result<std::int64_t> parse_rfc3339(std::string_view text);

// Unix seconds -> "2018-06-08T10:34:56+08:00" in the given offset (default Beijing time); always a
// numeric offset, never "Z", so every time wxrecon writes reads the same way.
std::string format_rfc3339(std::int64_t unix_seconds, int offset_minutes = 480);

// A civil date and wall-clock time taken as UTC -> Unix seconds; nullopt when the fields do not name a
// real instant (month 13, 30 February, hour 24, second 60, year outside 0..9999).
std::optional<std::int64_t> civil_to_unix(int year, int month, int day, int hour, int minute,
                                          int second) noexcept;

}  // namespace wxrecon
