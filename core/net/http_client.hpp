// An HTTP/1.1 client on Beast coroutines: keep-alive connections reused per
// host, connect and whole-exchange timeouts, bounded response bodies, and an
// outcome that tells "never sent" apart from "sent, answer unknown" (a POST
// may be retried elsewhere only in the first case).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "base/result.hpp"

namespace boost::asio::ssl {
class context;
}

namespace wxrecon::net {

struct url_parts {
    std::string scheme;  // "http" or "https"
    std::string host;
    std::string port;
    std::string target;  // path and query, "/" when empty
};
// Splits "http[s]://host[:port]/path?query"; invalid_argument otherwise.
result<url_parts> parse_url(std::string_view url);
// True for "localhost", 127.0.0.0/8 and ::1 (where plain http is acceptable).
bool is_loopback_host(std::string_view host);

struct http_response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string_view header(std::string_view name) const noexcept;  // case-insensitive; "" when absent
};

struct outbound_request {
    std::string method = "GET";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // Set: the answer's body is written to this file (created or truncated) instead of memory, up to
    // max_saved_bytes, so a large download never grows the process. A non-2xx answer's body is also read
    // back into http_response::body (up to max_body_bytes), for its error code.
    std::string save_to;
    std::uint64_t max_saved_bytes = std::uint64_t{4} << 30;
};

struct exchange {
    std::optional<http_response> response;  // set when a complete response arrived
    bool sent = false;                      // false: the request provably never left (connect failed)
    std::string error;                      // why there is no response
};

struct client_options {
    std::chrono::milliseconds connect_timeout{3000};
    std::chrono::milliseconds exchange_timeout{10000};  // write + read of one request
    std::size_t max_body_bytes = 1 << 20;
    std::size_t max_idle_per_host = 16;
    std::string user_agent = "wxrecon/" WXRECON_VERSION;
    // HTTPS: the server certificate must chain to the system's CAs or to these (a PEM file), and
    // name the host (SNI is sent). Empty: system CAs only.
    std::string ca_file;
    // Mutual TLS: this certificate (PEM, chain allowed) and its private key are presented to HTTPS
    // servers that ask for one. Both or neither.
    std::string client_cert_file;
    std::string client_key_file;
};

class http_client {
public:
    // Throws std::runtime_error when options.ca_file or the client certificate and key cannot be loaded.
    http_client(boost::asio::any_io_executor ex, client_options options = {});
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    // Sends one request; a reused connection that turns out closed is retried once on a fresh one
    // (only when nothing of the response was read, so the server did not act on it twice).
    boost::asio::awaitable<exchange> send(outbound_request request);
    // Drops idle connections (they close when the client is destroyed anyway).
    void close_idle();

private:
    struct connection;

    boost::asio::any_io_executor executor_;
    client_options options_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::map<std::string, std::vector<std::unique_ptr<connection>>> idle_;  // "host:port" -> idle connections
};

}  // namespace wxrecon::net
