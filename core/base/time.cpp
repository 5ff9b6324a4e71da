#include "base/time.hpp"

#include <chrono>
#include <cstdio>

namespace wxrecon {

std::int64_t system_micros() noexcept {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t wall_clock::micros() const {
    return source_ ? source_() : system_micros();
}

namespace {

constexpr std::int64_t seconds_per_day = 86400;

// Reads exactly `count` ASCII digits at `pos`; no sign, no spaces.
std::optional<int> read_digits(std::string_view text, std::size_t pos, std::size_t count) {
    if (pos + count > text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

error rfc3339_error(std::string_view text, std::string_view what) {
    return make_error(
        errc::invalid_argument,
        "invalid RFC 3339 timestamp \"" + std::string(text.substr(0, 64)) + "\": " + std::string(what));
}

// Floor division: -1 s is 23:59:59 of the previous day, not a negative time of day.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

}  // namespace

std::optional<std::int64_t> civil_to_unix(int year, int month, int day, int hour, int minute,
                                          int second) noexcept {
    if (year < 0 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return std::nullopt;
    const std::chrono::year_month_day date{std::chrono::year{year},
                                           std::chrono::month{static_cast<unsigned>(month)},
                                           std::chrono::day{static_cast<unsigned>(day)}};
    if (!date.ok()) return std::nullopt;
    const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
    return days * seconds_per_day + hour * 3600 + minute * 60 + second;
}

result<std::int64_t> parse_rfc3339(std::string_view text) {
    // Fixed layout: YYYY-MM-DDTHH:MM:SS, then [.fraction], then Z or +hh:mm / -hh:mm.
    const auto year = read_digits(text, 0, 4);
    const auto month = read_digits(text, 5, 2);
    const auto day = read_digits(text, 8, 2);
    const auto hour = read_digits(text, 11, 2);
    const auto minute = read_digits(text, 14, 2);
    const auto second = read_digits(text, 17, 2);
    if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
        return rfc3339_error(text, "expected YYYY-MM-DDTHH:MM:SS followed by an offset");
    }
    const auto base = civil_to_unix(*year, *month, *day, *hour, *minute, *second);
    if (!base) return rfc3339_error(text, "date or time of day out of range");

    std::size_t pos = 19;
    if (pos < text.size() && text[pos] == '.') {
        const std::size_t first_digit = ++pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
        if (pos == first_digit) return rfc3339_error(text, "'.' must be followed by fractional digits");
    }
    if (pos >= text.size()) return rfc3339_error(text, "missing offset (Z or +hh:mm / -hh:mm)");

    std::int64_t offset_seconds = 0;
    if (text[pos] == 'Z' || text[pos] == 'z') {
        ++pos;
    } else if (text[pos] == '+' || text[pos] == '-') {
        const auto off_hour = read_digits(text, pos + 1, 2);
        const auto off_minute = read_digits(text, pos + 4, 2);
        if (!off_hour || !off_minute || text[pos + 3] != ':') {
            return rfc3339_error(text, "offset must be +hh:mm or -hh:mm");
        }
        if (*off_hour > 23 || *off_minute > 59) return rfc3339_error(text, "offset out of range");
        offset_seconds = (*off_hour * 3600 + *off_minute * 60) * (text[pos] == '-' ? -1 : 1);
        pos += 6;
    } else {
        return rfc3339_error(text, "missing offset (Z or +hh:mm / -hh:mm)");
    }
    if (pos != text.size()) return rfc3339_error(text, "trailing characters after the offset");
    // Local wall time minus its offset is UTC.
    return *base - offset_seconds;
}

std::string format_rfc3339(std::int64_t unix_seconds, int offset_minutes) {
    const std::int64_t local = unix_seconds + std::int64_t{offset_minutes} * 60;
    const std::int64_t days = floor_div(local, seconds_per_day);
    const std::int64_t time_of_day = local - days * seconds_per_day;
    const std::chrono::year_month_day date{std::chrono::sys_days{std::chrono::days{days}}};

    const int abs_offset = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d",
                  static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                  static_cast<unsigned>(date.day()), static_cast<int>(time_of_day / 3600),
                  static_cast<int>(time_of_day / 60 % 60), static_cast<int>(time_of_day % 60),
                  offset_minutes < 0 ? '-' : '+', abs_offset / 60, abs_offset % 60);
    return buffer;
}

}  // namespace wxrecon
