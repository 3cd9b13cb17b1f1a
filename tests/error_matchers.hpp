#pragma once
// The check every bad-input test makes: the call throws salient::error and its message names
// the offending value.
#include <string>

#include <catch2/catch.hpp>

#include "salient/core/error.hpp"

namespace salient::test {

template <class F>
void require_error_mentioning(F&& f, const std::string& part) {
  try {
    f();
    FAIL("expected salient::error mentioning '" << part << "'");
  } catch (const salient::error& e) {
    INFO("message: " << e.what());
    CHECK_THAT(e.what(), Catch::Matchers::Contains(part));
  }
}

}  // namespace salient::test
