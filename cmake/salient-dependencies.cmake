# Finds salient's dependencies; shared by the build tree and the installed package config.
include(CMakeFindDependencyMacro)

find_dependency(Eigen3)
find_dependency(xtl)
find_dependency(xtensor)
find_dependency(nlohmann_json)
find_dependency(ZLIB)
find_dependency(Torch)
find_path(SALIENT_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb REQUIRED)

function(salient_link_core_dependencies target)
  target_include_directories(${target} SYSTEM INTERFACE ${SALIENT_STB_INCLUDE_DIR})
  target_link_libraries(${target} INTERFACE Eigen3::Eigen xtensor nlohmann_json::nlohmann_json ZLIB::ZLIB)
endfunction()

function(salient_link_dependencies target)
  salient_link_core_dependencies(${target})
  target_link_libraries(${target} INTERFACE ${TORCH_LIBRARIES})
  # LibTorch's required flags (the C++11 ABI define).
  separate_arguments(_salient_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(${target} INTERFACE ${_salient_torch_flags})
endfunction()
