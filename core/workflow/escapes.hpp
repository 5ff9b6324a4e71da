// Work started with co_spawn that nobody awaits: what escapes it must not vanish with the coroutine.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "base/metrics.hpp"

namespace wxrecon::workflow {

// A co_spawn completion that logs an escaped exception and counts it in
// wxrecon_internal_errors_total{component}; nothing when the work ended normally.
std::function<void(std::exception_ptr)> report_escapes(std::shared_ptr<metrics> m, std::string component);

}  // namespace wxrecon::workflow
