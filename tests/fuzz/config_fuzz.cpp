// libFuzzer target for the configuration reader: any TOML text, however malformed or hostile (deep
// nesting, huge numbers, odd durations, unknown keys), gives a configuration or an error naming the key,
// never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(bytes), size);
    (void)wxrecon::config::parse_config(text, "/fuzz/wxrecond.toml");
    return 0;
}
