// Text that goes into a request's path or query string.
#pragma once

#include <string>
#include <string_view>

namespace wxrecon {

// A path segment or query value as sent to WeChat Pay. WeChat's alphabet for order and refund numbers
// ([0-9A-Za-z_-|*]) and RFC 3986's other unreserved characters pass as they are, so a valid number is sent
// unchanged; anything else (/ ? # % spaces, CR, LF, non-ASCII) becomes %XX, so a number stored by hand
// can neither leave its segment nor add to the request.
std::string percent_encode(std::string_view s);

}  // namespace wxrecon
