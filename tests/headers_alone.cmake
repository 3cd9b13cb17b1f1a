# Every public header compiles on its own (include what you use): a syntax-only compile of
# a file that includes just that header, with the flags of the installed-style include path.
file(GLOB_RECURSE headers RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/salient/*.hpp)
file(MAKE_DIRECTORY ${WORK_DIR})
set(flags -std=c++20 -fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -I${SOURCE_DIR}/include -isystem /usr/include/stb
          -isystem /usr/include/torch/csrc/api/include)
foreach(header ${headers})
  string(MAKE_C_IDENTIFIER ${header} name)
  file(WRITE ${WORK_DIR}/${name}.cpp "#include \"${header}\"\n")
  execute_process(COMMAND ${CXX} ${flags} ${WORK_DIR}/${name}.cpp RESULT_VARIABLE result ERROR_VARIABLE errors)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${header} does not compile on its own:\n${errors}")
  endif()
  message(STATUS "ok: ${header}")
endforeach()
