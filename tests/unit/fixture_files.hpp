// Test helpers for file fixtures: the checked-in vectors under tests/data and throw-away key
// material generated with the openssl CLI in a private temporary folder (never committed).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>

#include "crypto/crypto.hpp"

namespace wxrecon::fixtures {

inline std::string read_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open fixture " + file.string());
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string read_data(std::string_view name) {
    return read_file(std::filesystem::path(WXRECON_TEST_DATA_DIR) / name);
}

inline void write_file(const std::filesystem::path& file, std::string_view content) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + file.string());
}

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class temp_dir {
public:
    temp_dir()
        : path_(std::filesystem::temp_directory_path() / ("wxrecon-test-" + crypto::random_alnum(12))) {
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const noexcept { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// Runs "openssl <args>" inside `dir`; true when it exited 0. Output goes to dir/openssl.log so a
// failure can be inspected while the folder still exists.
inline bool openssl(const temp_dir& dir, const std::string& args) {
    const std::string command =
        "cd '" + dir.path().string() + "' && openssl " + args + " >>openssl.log 2>&1 </dev/null";
    const int rc = std::system(command.c_str());
    return rc == 0;
}

}  // namespace wxrecon::fixtures
