// SHA-1 over a stream of bytes: a downloaded bill is checked against WeChat Pay's hash_value
// (docs/protocol-notes.md §6.3) as it is read, never held whole.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace wxrecon::crypto {

class sha1_stream {
public:
    sha1_stream();
    ~sha1_stream();
    sha1_stream(const sha1_stream&) = delete;
    sha1_stream& operator=(const sha1_stream&) = delete;

    void update(std::string_view bytes);
    // The digest of everything so far, lower-case hex (40 characters). The stream stays usable.
    std::string hex() const;

private:
    struct state;
    std::unique_ptr<state> state_;
};

}  // namespace wxrecon::crypto
