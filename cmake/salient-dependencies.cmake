# Finds salient's dependencies; shared by the build tree and the installed package config.
include(CMakeFindDependencyMacro)

find_dependency(Eigen3)
find_dependency(xtl)
find_dependency(xtensor)
find_dependency(nlohmann_json)
find_dependency(ZLIB)
find_dependency(Torch)
find_path(SALIENT_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb REQUIRED)
# Optional: HDF5's C library, for io/hdf5.hpp (the tools' --format hdf5). When found, linking
# salient::hdf5 adds its include path and library and defines SALIENT_HAVE_HDF5. Looked up by
# path (Debian keeps it under hdf5/serial), as FindHDF5 needs the C language enabled.
find_path(SALIENT_HDF5_INCLUDE_DIR hdf5.h PATH_SUFFIXES hdf5/serial hdf5)
find_library(SALIENT_HDF5_LIBRARY NAMES hdf5_serial hdf5 PATH_SUFFIXES hdf5/serial)
if(SALIENT_HDF5_INCLUDE_DIR AND SALIENT_HDF5_LIBRARY AND NOT TARGET salient::hdf5)
  add_library(salient::hdf5 INTERFACE IMPORTED)
  target_include_directories(salient::hdf5 SYSTEM INTERFACE ${SALIENT_HDF5_INCLUDE_DIR})
  target_link_libraries(salient::hdf5 INTERFACE ${SALIENT_HDF5_LIBRARY})
  target_compile_definitions(salient::hdf5 INTERFACE SALIENT_HAVE_HDF5)
endif()

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
