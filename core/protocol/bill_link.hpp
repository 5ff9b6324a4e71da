// The answer to an APIv3 bill application (docs/protocol-notes.md §6.1, §6.5): where to download the file
// and the SHA-1 it must have once decompressed.
#pragma once

#include <string>
#include <string_view>

#include "base/result.hpp"

namespace wxrecon::protocol::bill {

struct bill_link {
    std::string hash_type;   // "SHA1"
    std::string hash_value;  // lower-case hex, 40 characters
    std::string download_url;
};

// Fails with parse_error naming the field: not JSON, a field missing, hash_type other than SHA1, or a
// hash_value that is not 40 hex digits.
result<bill_link> parse_bill_link(std::string_view json);

}  // namespace wxrecon::protocol::bill
