// Planted for tests/cli/layers_test.sh: the store may not depend on the workflows above it.
#include "store/ledger.hpp"
#include "workflow/poller.hpp"
