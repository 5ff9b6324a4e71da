// Planted for tests/cli/layers_test.sh: half of an include cycle.
#pragma once

#include "domain/cycle_b.hpp"
