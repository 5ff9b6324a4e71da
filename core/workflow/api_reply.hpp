// Replies of the internal API: errors as {"error": "..."} naming the field or cause.
#pragma once

#include <string_view>

#include "base/http_message.hpp"
#include "base/json_writer.hpp"

namespace wxrecon::workflow {

inline reply json_error(int status, std::string_view message) {
    return reply{status, "application/json", json_object().add("error", message).str()};
}

}  // namespace wxrecon::workflow
