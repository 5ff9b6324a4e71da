// The simulator's stand-in for the merchant's application: it receives
// wxrecond's app events (docs/interfaces.md §7.3), checks each one's
// X-Wxrecon-Signature with the configured secret, and keeps a bounded log a
// test reads back. Pure and single-threaded, like the ledger model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wxrecon::sim {

// Why a signature header does not verify; empty when it does. `t=<unix>,v1=<hex>` (several v1 allowed, one
// must match): HMAC-SHA256 over "<t>.<body>" with secret, compared in constant time, t within
// tolerance_seconds of now.
std::string check_app_event_signature(std::string_view header, std::string_view body, std::string_view secret,
                                      std::int64_t now, std::int64_t tolerance_seconds = 300);

struct app_event {
    std::uint64_t n = 0;           // arrival number, from 1
    std::int64_t received_at = 0;  // Unix seconds on the simulator's clock
    std::string event_id;          // X-Wxrecon-Event-Id
    std::string id;                // the body's "id"
    std::string type;              // the body's "type"
    bool signature_ok = false;
    std::string signature_error;  // why not, when not
    int answered = 0;             // the HTTP status the receiver answered
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

class app_event_log {
public:
    static constexpr std::size_t max_events = 100'000;  // the oldest go first beyond this

    // Records one delivery and returns the status to answer with.
    int receive(std::vector<std::pair<std::string, std::string>> headers, std::string body, std::int64_t now);
    void configure(std::string secret, int status);
    void clear();

    const std::string& secret() const noexcept { return secret_; }
    int status() const noexcept { return status_; }
    // {"first","next","received","dropped","signature_failures","events":[…]} from arrival number since on,
    // at most limit events.
    std::string to_json(std::uint64_t since, std::size_t limit) const;
    std::string config_json() const;

private:
    std::string secret_;
    int status_ = 204;
    std::deque<app_event> events_;
    std::uint64_t first_ = 1;  // arrival number of events_.front()
    std::uint64_t next_ = 1;
    std::uint64_t signature_failures_ = 0;
};

}  // namespace wxrecon::sim
