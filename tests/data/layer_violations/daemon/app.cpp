// Planted for tests/cli/layers_test.sh: all allowed; must not be reported.
#include <spdlog/spdlog.h>

#include "app.hpp"
#include "store/ledger.hpp"
#include "workflow/poller.hpp"
