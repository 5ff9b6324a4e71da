#include "workflow/escapes.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

#include "base/encoding.hpp"

namespace wxrecon::workflow {

std::function<void(std::exception_ptr)> report_escapes(std::shared_ptr<metrics> m, std::string component) {
    return [m = std::move(m), component = std::move(component)](std::exception_ptr escaped) {
        if (!escaped) return;
        std::string what = "an exception that is not a std::exception";
        try {
            std::rethrow_exception(escaped);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        spdlog::error("internal error: escaped component={} error={}", component, log_quote(what));
        if (m) m->add("wxrecon_internal_errors_total", {{"component", component}});
    };
}

}  // namespace wxrecon::workflow
