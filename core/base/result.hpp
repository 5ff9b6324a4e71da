// One error vocabulary for the whole project: every fallible function returns
// result<T>; expected outcomes are values, exceptions stay at the adapters.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace wxrecon {

// What went wrong, grouped by what the caller does next.
enum class errc {
    invalid_argument,   // caller's input is malformed: reject it (400 / exit 2)
    config_error,       // configuration or key material unusable: exit 2
    missing_signature,  // a signature, or a header it is checked with, is absent: reject (401)
    bad_signature,      // a signature did not verify, or its headers are unreadable: reject (401)
    unknown_serial,     // no trusted key carries this serial: reject (401)
    stale_timestamp,    // outside the replay window: reject (401)
    decrypt_failed,     // ciphertext or tag did not authenticate: reject (400)
    forbidden_xml,      // DTD / entity declaration in XML: reject (400)
    parse_error,        // syntactically broken JSON / XML / TOML
    io_error,           // a file could not be read
    unavailable,        // a dependency is down: retry later (503)
    internal,           // a bug or an unexpected library failure
};

const char* to_string(errc code) noexcept;

struct error {
    errc code;
    std::string message;
};

template <class T>
class [[nodiscard]] result {
public:
    result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    result(error err) : state_(std::in_place_index<1>, std::move(err)) {}

    bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const error& err() const& { return std::get<1>(state_); }

private:
    std::variant<T, error> state_;
};

// result<void>: success carries nothing.
struct ok_t {};
inline constexpr ok_t ok{};
using status = result<ok_t>;

inline error make_error(errc code, std::string message) {
    return error{code, std::move(message)};
}

}  // namespace wxrecon
